import type { Migration } from 'kysely';
import * as m001 from './001-foundation.ts';
import * as m002 from './002-audit.ts';
import * as m003 from './003-keys.ts';
import * as m004 from './004-lockout.ts';
import * as m005 from './005-identity.ts';
import * as m006 from './006-audit-sealing.ts';
import * as m007 from './007-stage-sessions.ts';
import * as m008 from './008-perimeter.ts';
import * as m009 from './009-apps.ts';
import * as m010 from './010-app-lifecycle.ts';
import * as m011 from './011-data-api.ts';
import * as m012 from './012-federation.ts';
import * as m013 from './013-waf.ts';
import * as m014 from './014-client-app-roles.ts';
import * as m015 from './015-stage-audit-insert.ts';

/** Platform catalog migrations, in order. Names never change once released. */
export const migrations: Readonly<Record<string, Migration>> = Object.freeze({
  '001-foundation': m001,
  '002-audit': m002,
  '003-keys': m003,
  '004-lockout': m004,
  '005-identity': m005,
  '006-audit-sealing': m006,
  '007-stage-sessions': m007,
  '008-perimeter': m008,
  '009-apps': m009,
  '010-app-lifecycle': m010,
  '011-data-api': m011,
  '012-federation': m012,
  '013-waf': m013,
  '014-client-app-roles': m014,
  '015-stage-audit-insert': m015,
});
