// The transformations against the examples of the ModSecurity reference manual (the CRS rules'
// semantics depend on them).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cmdLine, cssDecode, escapeSeqDecode, htmlEntityDecode, jsDecode, normalizePath, normalizePathWin, removeCommentsChar, replaceComments, TRANSFORMS, urlDecode, urlDecodeUni, utf8toUnicode } from './transforms.ts';

test('urlDecodeUni decodes %XX, %uHHHH and + and maps full-width ASCII to ASCII', () => {
  assert.equal(urlDecodeUni('a%20b+c'), 'a b c');
  assert.equal(urlDecodeUni('%u0041%u0042'), 'AB');
  assert.equal(urlDecodeUni('%uff1cscript%uff1e'), '<script>');
  assert.equal(urlDecodeUni('100%'), '100%', 'a malformed escape is kept');
  assert.equal(urlDecode('%2e%2e%2f'), '../');
});

test('htmlEntityDecode decodes numeric and the named entities, with or without the semicolon', () => {
  assert.equal(htmlEntityDecode('&lt;script&gt;'), '<script>');
  assert.equal(htmlEntityDecode('&#60;&#x3c;&#X3C'), '<<<');
  assert.equal(htmlEntityDecode('&quot;&amp;&nbsp;'), '"&\u00a0');
  assert.equal(htmlEntityDecode('&unknown;'), '&unknown;');
});

test("cmdLine follows the manual: drops \\ \" ' ^, drops spaces before / and (, turns , ; into spaces, squeezes, lowercases", () => {
  // The manual's examples: "cat /etc/passwd" variants all normalise to the same string.
  assert.equal(cmdLine('c^ommand /c ...'), 'command/c ...');
  assert.equal(cmdLine('"c"md.exe'), 'cmd.exe');
  assert.equal(cmdLine("c'a't /etc/passwd"), 'cat/etc/passwd');
  assert.equal(cmdLine('CAT\t/ETC/PASSWD'), 'cat/etc/passwd');
  assert.equal(cmdLine('a,b;c  d'), 'a b c d');
  assert.equal(cmdLine('exec  ( x )'), 'exec( x )');
});

test('normalizePath removes repeated slashes, self references and back references', () => {
  assert.equal(normalizePath('/a//b/./c/../d'), '/a/b/d');
  assert.equal(normalizePath('/../../etc/passwd'), '/etc/passwd');
  assert.equal(normalizePath('../../etc/passwd'), '../../etc/passwd', 'a relative path keeps the back references it cannot resolve');
  assert.equal(normalizePathWin('..\\..\\windows\\win.ini'), '../../windows/win.ini');
});

test('jsDecode, cssDecode and escapeSeqDecode decode their escapes', () => {
  assert.equal(jsDecode('\\x3cscript\\u003e'), '<script>');
  assert.equal(jsDecode('\\141lert'), 'alert');
  assert.equal(cssDecode('\\6a avascript'), 'javascript');
  assert.equal(cssDecode('ja\\vascript'), 'javascript');
  assert.equal(escapeSeqDecode('a\\x41\\n\\101'), 'aA\nA');
});

test('replaceComments turns each C comment into a space; removeCommentsChar drops the markers', () => {
  assert.equal(replaceComments('UNION/**/SELECT'), 'UNION SELECT');
  assert.equal(replaceComments('a /* unterminated'), 'a  ');
  assert.equal(removeCommentsChar('1--2#3/*4*/'), '1234');
});

test('utf8toUnicode writes characters beyond ASCII as %uHHHH, which urlDecodeUni reads back', () => {
  assert.equal(utf8toUnicode('é<'), '%u00e9<');
  assert.equal(urlDecodeUni(utf8toUnicode('\uff1c')), '<');
});

test('every transformation the generated rules name exists', async () => {
  const { crsRuleSet } = await import('./index.ts');
  const missing = new Set<string>();
  for (const r of crsRuleSet().rules) for (const l of r.links) for (const t of l.transforms) if (!TRANSFORMS[t]) missing.add(t);
  assert.deepEqual([...missing], []);
});
