import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AccordError } from '../../errors/index.ts';
import { basicCredentials, DUPLICATE_PARAMETER, parseTokenRequest } from './oauth.ts';
import { boundedDuration, CLIENT_LIMITS, newClientId } from './service.ts';

const basic = (raw: string) => `Basic ${Buffer.from(raw).toString('base64')}`;
const oauthCode = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof AccordError);
    return err.extensions?.error;
  }
  return undefined;
};

describe('client credentials in HTTP Basic', () => {
  test('id and secret are form-decoded after base64, so colons, percent signs and plus signs survive', () => {
    assert.deepEqual(basicCredentials(basic('acl_abc:acs_def')), { id: 'acl_abc', secret: 'acs_def' });
    assert.deepEqual(basicCredentials(basic(`${encodeURIComponent('id:with%colon')}:${encodeURIComponent('s:e+c%r')}`)), { id: 'id:with%colon', secret: 's:e+c%r' });
    assert.deepEqual(basicCredentials(basic('a+b:c+d')), { id: 'a b', secret: 'c d' });
    assert.deepEqual(basicCredentials(`basic ${Buffer.from('x:y').toString('base64')}`), { id: 'x', secret: 'y' });
  });

  test('a malformed header is invalid_client with a Basic challenge', () => {
    for (const header of ['Bearer aca_x', 'Basic', 'Basic !!!', basic('no-colon'), basic(':secret'), basic('id:'), basic('%E0%A4%A:x')]) {
      try {
        basicCredentials(header);
        assert.fail(`accepted ${header}`);
      } catch (err) {
        assert.ok(err instanceof AccordError);
        assert.equal(err.code, 'IAM_CLIENT_INVALID');
        assert.equal(err.headers?.['www-authenticate'], 'Basic realm="accord"');
      }
    }
  });
});

describe('token request shape', () => {
  const creds = { client_id: 'acl_id', client_secret: 'acs_secret' };

  test('accepts client credentials from HTTP Basic or from the body', () => {
    assert.deepEqual(parseTokenRequest({ grant_type: 'client_credentials' }, basic('acl_id:acs_secret')), { clientId: 'acl_id', clientSecret: 'acs_secret', method: 'basic' });
    assert.deepEqual(parseTokenRequest({ grant_type: 'client_credentials', ...creds }, undefined), { clientId: 'acl_id', clientSecret: 'acs_secret', method: 'body' });
    assert.deepEqual(parseTokenRequest({ grant_type: 'client_credentials', client_id: 'acl_id' }, basic('acl_id:acs_secret')).method, 'basic');
  });

  test('refuses what RFC 6749 refuses, each with its error code', () => {
    assert.equal(oauthCode(() => parseTokenRequest(undefined, basic('a:b'))), 'invalid_request');
    assert.equal(oauthCode(() => parseTokenRequest('grant_type=client_credentials', undefined)), 'invalid_request');
    assert.equal(oauthCode(() => parseTokenRequest([], undefined)), 'invalid_request');
    assert.equal(oauthCode(() => parseTokenRequest({ grant_type: 'authorization_code', ...creds }, undefined)), 'unsupported_grant_type');
    assert.equal(oauthCode(() => parseTokenRequest({ grant_type: DUPLICATE_PARAMETER, ...creds }, undefined)), 'invalid_request');
    assert.equal(oauthCode(() => parseTokenRequest({ grant_type: 'client_credentials', ...creds, scope: DUPLICATE_PARAMETER }, undefined)), 'invalid_request');
    assert.equal(oauthCode(() => parseTokenRequest({ grant_type: 'client_credentials', client_id: 1, client_secret: 'x' }, undefined)), 'invalid_request');
    assert.equal(oauthCode(() => parseTokenRequest({ grant_type: 'client_credentials', ...creds }, basic('acl_id:acs_secret'))), 'invalid_request');
    assert.equal(oauthCode(() => parseTokenRequest({ grant_type: 'client_credentials', client_id: 'acl_other' }, basic('acl_id:acs_secret'))), 'invalid_request');
    assert.equal(oauthCode(() => parseTokenRequest({ grant_type: 'client_credentials' }, undefined)), 'invalid_client');
    assert.equal(oauthCode(() => parseTokenRequest({ grant_type: 'client_credentials', client_id: 'acl_id' }, undefined)), 'invalid_client');
    assert.equal(oauthCode(() => parseTokenRequest({ grant_type: 'client_credentials' }, 'Bearer aca_x')), 'invalid_client');
  });
});

describe('client expiry and ids', () => {
  const bounds = { fallback: CLIENT_LIMITS.expiresInDefault, min: CLIENT_LIMITS.expiresInMin, max: CLIENT_LIMITS.expiresInMax };

  test('durations are parsed within 1 hour and 2 years, 90 days by default', () => {
    assert.equal(boundedDuration(undefined, 'expiresIn', bounds), 90 * 86400);
    assert.equal(boundedDuration('1h', 'expiresIn', bounds), 3600);
    assert.equal(boundedDuration('3600', 'expiresIn', bounds), 3600);
    assert.equal(boundedDuration('2y', 'expiresIn', bounds), 730 * 86400);
    for (const bad of ['59m', '3599', '731d', '3y', 'soon', '1.5d', '-1h', '1 h']) {
      assert.throws(() => boundedDuration(bad, 'expiresIn', bounds), (err: unknown) => err instanceof AccordError && err.code === 'IAM_EXPIRY_INVALID', bad);
    }
  });

  test('client ids are acl_ and 128 random bits, different every time', () => {
    const ids = new Set(Array.from({ length: 100 }, newClientId));
    assert.equal(ids.size, 100);
    for (const id of ids) assert.match(id, /^acl_[A-Za-z0-9_-]{22}$/);
  });
});
