// The one `\boxed{…}` extractor of the project: every scorer (ClevrPolicy, ToolPolicy, SceneQA) and
// the RL reward read answers through it. Braces are matched, and braces inside JSON strings are
// skipped, so a tool call such as \boxed{{"name": "AddText", "arguments": {"text": "a } b"}}} is
// read whole.

/** The opening of a box. */
export const BOX = '\\boxed{';

/** Brace matching from `start` (just after `\boxed{`); `strings`: skip braces inside "…" (with \ escapes). */
function matchBrace(text: string, start: number, strings: boolean): number {
  let depth = 1;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"' && strings) inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  return -1;
}

/**
 * The box's content from `start` (the index just after `\boxed{`) to its matching `}`, and the index
 * after that `}`; null if the box is never closed. Braces inside JSON strings do not count; when
 * that reading finds no closing brace (an unbalanced quote, as in `\boxed{Case "8}`), plain brace
 * matching is used instead.
 */
export function boxContent(text: string, start: number): { content: string; end: number } | null {
  let close = matchBrace(text, start, true);
  if (close < 0) close = matchBrace(text, start, false);
  return close < 0 ? null : { content: text.slice(start, close), end: close + 1 };
}

/** The content of the last `\boxed{…}` in `text` (see boxContent), or null. */
export function lastBoxed(text: string): string | null {
  const at = text.lastIndexOf(BOX);
  return at < 0 ? null : (boxContent(text, at + BOX.length)?.content ?? null);
}
