// ModSecurity's transformation functions (the ones the CRS request rules use), after the
// reference manual's descriptions. ModSecurity works on bytes; here a value is a JS string whose
// percent-decoded bytes become one character each (latin1), which is what the byte-oriented
// regexes of CRS expect.

const HEX = /^[0-9a-fA-F]$/;
const isHex = (c: string | undefined) => c !== undefined && HEX.test(c);

/** %XX → byte, `+` → space; a malformed escape is left as it is. */
export function urlDecode(s: string): string {
  if (s.indexOf('%') < 0 && s.indexOf('+') < 0) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '%' && isHex(s[i + 1]) && isHex(s[i + 2])) {
      out += String.fromCharCode(Number.parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c === '+') out += ' ';
    else out += c;
  }
  return out;
}

/** Like urlDecode, and %uHHHH too (full-width ASCII, U+FF01..U+FF5E, maps to ASCII as in IIS). */
export function urlDecodeUni(s: string): string {
  if (s.indexOf('%') < 0 && s.indexOf('+') < 0) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '%' && (s[i + 1] === 'u' || s[i + 1] === 'U') && isHex(s[i + 2]) && isHex(s[i + 3]) && isHex(s[i + 4]) && isHex(s[i + 5])) {
      const code = Number.parseInt(s.slice(i + 2, i + 6), 16);
      out += code >= 0xff01 && code <= 0xff5e ? String.fromCharCode(code - 0xfee0) : String.fromCharCode(code & 0xff);
      i += 5;
    } else if (c === '%' && isHex(s[i + 1]) && isHex(s[i + 2])) {
      out += String.fromCharCode(Number.parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c === '+') out += ' ';
    else out += c;
  }
  return out;
}

const ENTITIES: Record<string, string> = { quot: '"', amp: '&', lt: '<', gt: '>', nbsp: '\u00a0', apos: "'" };

/** &#DD; &#xHH; and the named entities ModSecurity knows (quot, amp, lt, gt, nbsp); the `;` is optional. */
export function htmlEntityDecode(s: string): string {
  if (s.indexOf('&') < 0) return s;
  return s.replace(/&(?:#[xX]([0-9a-fA-F]{1,6})|#([0-9]{1,7})|(quot|amp|lt|gt|nbsp|apos));?/g, (m, hex, dec, name) => {
    if (hex) return String.fromCharCode(Number.parseInt(hex, 16) & 0xffff);
    if (dec) return String.fromCharCode(Number.parseInt(dec, 10) & 0xffff);
    return ENTITIES[(name as string).toLowerCase()] ?? m;
  });
}

/** ModSecurity's cmdLine: drop \ " ' ^, drop spaces before / and (, , and ; become spaces, squeeze whitespace, lowercase. */
export function cmdLine(s: string): string {
  // ASCII (nearly every value): the same steps as regex passes. Beyond ASCII, per character,
  // as ModSecurity lowercases byte by byte (String#toLowerCase on the whole string is
  // context-sensitive, e.g. a final sigma).
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is the point
  if (/^[\x00-\x7f]*$/.test(s)) {
    return s
      .replace(/[\\"'^]/g, '')
      .replace(/[ ,;\t\r\n]+/g, ' ')
      .replace(/ (?=[/(])/g, '')
      .replace(/^ | $/g, '')
      .toLowerCase();
  }
  let out = '';
  let space = false;
  for (const ch of s) {
    if (ch === '\\' || ch === '"' || ch === "'" || ch === '^') continue;
    if (ch === ' ' || ch === ',' || ch === ';' || ch === '\t' || ch === '\r' || ch === '\n') {
      space = true;
      continue;
    }
    if (space) {
      if (ch !== '/' && ch !== '(' && out !== '') out += ' ';
      space = false;
    }
    out += ch.toLowerCase();
  }
  return out;
}

/** Collapses repeated slashes and resolves ./ and ../ (a leading ../ that cannot go up is kept). */
export function normalizePath(s: string): string {
  // Without a slash the value is one segment: only `.` changes (to nothing).
  if (s.indexOf('/') < 0) return s === '.' ? '' : s;
  const absolute = s.startsWith('/');
  const trailing = s.endsWith('/') || s.endsWith('/.') || s.endsWith('/..');
  const out: string[] = [];
  for (const seg of s.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!absolute) out.push('..');
      continue;
    }
    out.push(seg);
  }
  let r = (absolute ? '/' : '') + out.join('/');
  if (trailing && out.length > 0) r += '/';
  return r;
}

/** normalizePath after turning backslashes into slashes. */
export function normalizePathWin(s: string): string {
  return normalizePath(s.replace(/\\/g, '/'));
}

/** JavaScript escapes: \uHHHH (full-width ASCII mapped), \xHH, \OOO, \n \t ... ; an unknown escape drops the backslash. */
export function jsDecode(s: string): string {
  if (s.indexOf('\\') < 0) return s;
  const simple: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };
  return s.replace(/\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[0-7]{1,3}|[\s\S])/g, (_m, e: string) => {
    if (e.length === 5 && e[0] === 'u') {
      const code = Number.parseInt(e.slice(1), 16);
      return code >= 0xff01 && code <= 0xff5e ? String.fromCharCode(code - 0xfee0) : String.fromCharCode(code & 0xff);
    }
    if (e.length === 3 && e[0] === 'x') return String.fromCharCode(Number.parseInt(e.slice(1), 16));
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(Number.parseInt(e, 8) & 0xff);
    return simple[e] ?? e;
  });
}

/** CSS escapes: \ followed by 1-6 hex digits (and an optional space), or any other character. */
export function cssDecode(s: string): string {
  if (s.indexOf('\\') < 0) return s;
  return s.replace(/\\(?:([0-9a-fA-F]{1,6})\s?|([\s\S]))/g, (_m, hex: string | undefined, ch: string | undefined) => {
    if (hex) {
      const code = Number.parseInt(hex, 16);
      return code >= 0xff01 && code <= 0xff5e ? String.fromCharCode(code - 0xfee0) : String.fromCharCode(code & 0xff);
    }
    return ch === '\n' ? '' : (ch ?? '');
  });
}

/** Characters beyond ASCII become %uHHHH, as ModSecurity's utf8toUnicode does for multi-byte UTF-8. */
export function utf8toUnicode(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is the point
  if (/^[\x00-\x7f]*$/.test(s)) return s;
  let out = '';
  for (const ch of s) {
    const code = ch.codePointAt(0) ?? 0;
    out += code < 0x80 ? ch : `%u${(code & 0xffff).toString(16).padStart(4, '0')}`;
  }
  return out;
}

/** ANSI C escapes: \a \b \f \n \r \t \v \\ \? \' \" \xHH \OOO. */
export function escapeSeqDecode(s: string): string {
  if (s.indexOf('\\') < 0) return s;
  const simple: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '?': '?', "'": "'", '"': '"' };
  return s.replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|[abfnrtv\\?'"])/g, (_m, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(Number.parseInt(e.slice(1), 16));
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(Number.parseInt(e, 8) & 0xff);
    return simple[e] ?? e;
  });
}

/** Each C comment becomes one space; an unterminated one runs to the end. */
export function replaceComments(s: string): string {
  if (s.indexOf('/*') < 0) return s;
  return s.replace(/\/\*[\s\S]*?(?:\*\/|$)/g, ' ');
}

/** Removes the comment markers /* * / -- and #. */
export function removeCommentsChar(s: string): string {
  return s.replace(/\/\*|\*\/|--|#/g, '');
}

function base64Decode(s: string): string {
  return Buffer.from(s, 'base64').toString('latin1');
}

// \s already covers the vertical tab (\x0b) in JavaScript.
const WS = /\s+/g;
const SPACES_TO_COMPRESS = /\s\s|[^\S ]/;

/** Every transformation by its ModSecurity name. */
export const TRANSFORMS: Readonly<Record<string, (s: string) => string>> = {
  urlDecode,
  urlDecodeUni,
  htmlEntityDecode,
  lowercase: (s) => s.toLowerCase(),
  removeNulls: (s) => (s.indexOf('\0') < 0 ? s : s.replace(/\0/g, '')),
  cmdLine,
  normalizePath,
  normalisePath: normalizePath,
  normalizePathWin,
  normalisePathWin: normalizePathWin,
  jsDecode,
  cssDecode,
  utf8toUnicode,
  escapeSeqDecode,
  replaceComments,
  removeCommentsChar,
  removeWhitespace: (s) => s.replace(WS, ''),
  // Unchanged (the same string back) when every whitespace run is already one space.
  compressWhitespace: (s) => (SPACES_TO_COMPRESS.test(s) ? s.replace(WS, ' ') : s),
  base64Decode,
  base64decode: base64Decode,
  trim: (s) => s.trim(),
  length: (s) => String(s.length),
};

/** Applies a transformation pipeline; an unknown name is a build error, caught by the converter test. */
export function applyTransforms(value: string, names: readonly string[]): string {
  let v = value;
  for (const n of names) {
    const f = TRANSFORMS[n];
    if (f) v = f(v);
  }
  return v;
}
