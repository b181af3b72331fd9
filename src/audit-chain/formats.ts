import { hostname } from 'node:os';
import type { AuditRecordView } from './search.ts';

/** JSON Lines: one record per line, as the API shows it. */
export const toJsonLine = (r: AuditRecordView): string => `${JSON.stringify(r)}\n`;

// CEF escaping: `\` and `|` in header fields; `\`, `=` and line breaks in extension values.
const cefHeader = (s: string) => s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|');
const cefValue = (s: string) => s.replace(/\\/g, '\\\\').replace(/=/g, '\\=').replace(/\r?\n|\r/g, '\\n');

const severity = (r: AuditRecordView): number => (r.outcome === 'denied' ? 7 : r.outcome === 'failure' ? 5 : 3);

/** ArcSight Common Event Format (CEF:0), one line per record. */
export function toCef(r: AuditRecordView): string {
  const ext: [string, string | number | null | undefined][] = [
    ['rt', Date.parse(r.time)],
    ['externalId', `${r.chain}:${r.seq}`],
    ['act', r.action],
    ['outcome', r.outcome],
    ['reason', r.reason],
    ['suser', r.actor.label],
    ['suid', r.actor.id],
    ['spriv', r.actor.roles.join(',')],
    ['src', r.source.ip],
    ['requestClientApplication', r.source.userAgent],
    ['cs1Label', 'tenant'],
    ['cs1', r.tenantId],
    ['cs2Label', 'target'],
    ['cs2', r.target ? `${r.target.type}:${r.target.id}` : null],
    ['cs3Label', 'requestId'],
    ['cs3', r.source.requestId],
    ['cs4Label', 'hash'],
    ['cs4', r.hash],
  ];
  const extension = ext
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${cefValue(String(v))}`)
    .join(' ');
  return `CEF:0|Accord|Accord Platform|0.1|${cefHeader(r.action)}|${cefHeader(r.action)}|${severity(r)}|${extension}\n`;
}

// RFC 5424 SD-PARAM values escape `"`, `\` and `]`.
const sdValue = (s: string) => s.replace(/[\\"\]]/g, '\\$&');

/**
 * One RFC 5424 syslog message (facility 13 "log audit"), with the chain and sequence in
 * structured data and the JSON record as the message.
 */
export function toSyslog5424(r: AuditRecordView, host = hostname()): string {
  const pri = 13 * 8 + (r.outcome === 'success' ? 6 : 4);
  const sd = `[accord@32473 chain="${sdValue(r.chain)}" seq="${r.seq}" action="${sdValue(r.action)}" outcome="${sdValue(r.outcome)}"]`;
  return `<${pri}>1 ${r.time} ${host.slice(0, 255) || '-'} accord - audit ${sd} ${JSON.stringify(r)}`;
}
