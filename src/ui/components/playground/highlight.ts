/**
 * A small syntax highlighter for code blocks in answers: comments, strings, numbers, keywords
 * and a few literals, for the languages a chat model writes most. Output is a token list that
 * the caller turns into text nodes, so highlighting never parses HTML.
 */
export type TokenKind = 'comment' | 'string' | 'number' | 'keyword' | 'literal' | 'plain';

export interface Token {
  kind: TokenKind;
  text: string;
}

const KEYWORDS: Record<string, string[]> = {
  js: 'async await break case catch class const continue default delete do else export extends finally for from function if import in instanceof interface let new of return static switch throw try type typeof var void while yield'.split(
    ' ',
  ),
  py: 'and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield'.split(
    ' ',
  ),
  sh: 'case do done elif else esac export fi for function if in local return then until while echo cd'.split(
    ' ',
  ),
  sql: 'select from where and or not insert into values update set delete create table join left right inner on group by order limit as distinct having'.split(
    ' ',
  ),
  rust: 'as break const continue crate else enum extern fn for if impl in let loop match mod move mut pub ref return self struct trait type unsafe use where while'.split(
    ' ',
  ),
  c: 'auto break case char const continue default do double else enum extern float for goto if int long return short signed sizeof static struct switch typedef union unsigned void volatile while class public private protected namespace template'.split(
    ' ',
  ),
};

const ALIASES: Record<string, string> = {
  javascript: 'js',
  typescript: 'js',
  ts: 'js',
  jsx: 'js',
  tsx: 'js',
  json: 'js',
  python: 'py',
  bash: 'sh',
  shell: 'sh',
  zsh: 'sh',
  console: 'sh',
  rs: 'rust',
  cpp: 'c',
  'c++': 'c',
  java: 'c',
  go: 'c',
  csharp: 'c',
  cs: 'c',
};

const LITERALS = new Set([
  'true',
  'false',
  'null',
  'undefined',
  'None',
  'True',
  'False',
  'nil',
  'this',
  'self',
]);

export function languageOf(lang: string | undefined): string {
  const l = (lang ?? '').toLowerCase().trim();
  return ALIASES[l] ?? (l in KEYWORDS ? l : 'js');
}

export function highlightTokens(code: string, lang?: string): Token[] {
  const language = languageOf(lang);
  const keywords = new Set(KEYWORDS[language] ?? []);
  const hashComments = language === 'py' || language === 'sh';
  const sqlComments = language === 'sql';
  const pattern = new RegExp(
    [
      hashComments
        ? '#[^\\n]*'
        : sqlComments
          ? '--[^\\n]*'
          : '\\/\\/[^\\n]*|\\/\\*[\\s\\S]*?\\*\\/',
      language === 'py' ? '"""[\\s\\S]*?"""|\'\'\'[\\s\\S]*?\'\'\'' : null,
      '"(?:[^"\\\\\\n]|\\\\.)*"|\'(?:[^\'\\\\\\n]|\\\\.)*\'|`(?:[^`\\\\]|\\\\.)*`',
      '\\b(?:0x[0-9a-fA-F]+|\\d+(?:\\.\\d+)?(?:[eE][-+]?\\d+)?)\\b',
      '[A-Za-z_$][\\w$]*',
    ]
      .filter(Boolean)
      .map((p) => `(${p})`)
      .join('|'),
    'g',
  );
  const out: Token[] = [];
  const push = (kind: TokenKind, text: string) => {
    const last = out[out.length - 1];
    if (last && last.kind === kind) last.text += text;
    else out.push({ kind, text });
  };
  let at = 0;
  for (const m of code.matchAll(pattern)) {
    const i = m.index ?? 0;
    if (i > at) push('plain', code.slice(at, i));
    const t = m[0];
    let kind: TokenKind = 'plain';
    if (/^(\/\/|\/\*|#|--)/.test(t) && !/^[\w$]/.test(t)) kind = 'comment';
    else if (/^["'`]/.test(t)) kind = 'string';
    else if (/^\d/.test(t)) kind = 'number';
    else if (keywords.has(language === 'sql' ? t.toLowerCase() : t)) kind = 'keyword';
    else if (LITERALS.has(t)) kind = 'literal';
    push(kind, t);
    at = i + t.length;
  }
  if (at < code.length) push('plain', code.slice(at));
  return out;
}

/** Replaces a code element's text with highlighted spans (text nodes only, no HTML parsing). */
export function highlightElement(el: HTMLElement): void {
  if (el.dataset.highlighted === '1') return;
  const lang = [...el.classList].find((c) => c.startsWith('language-'))?.slice(9);
  const tokens = highlightTokens(el.textContent ?? '', lang);
  el.textContent = '';
  for (const t of tokens) {
    if (t.kind === 'plain') el.append(document.createTextNode(t.text));
    else {
      const span = document.createElement('span');
      span.className = `tok-${t.kind}`;
      span.textContent = t.text;
      el.append(span);
    }
  }
  el.dataset.highlighted = '1';
}
