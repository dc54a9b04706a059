/**
 * A strict reader of the YAML that the repository's compose files are written in (Docker does not run in
 * the tests): block mappings and sequences indented with spaces, plain, single- and double-quoted scalars,
 * flow sequences of scalars (`["a", "b"]`), `{}` for an empty mapping, and comments. Anything else (tabs,
 * anchors, multi-line scalars, flow mappings with content, duplicate keys, uneven indentation) throws with
 * the line number, so a file that reads here means what it looks like.
 */

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  no: number;
  indent: number;
  text: string;
}

function stripComment(raw: string, no: number): string {
  let quote: string | null = null;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || raw[i - 1] === ' ')) return raw.slice(0, i).trimEnd();
  }
  if (quote) throw new Error(`line ${no}: unterminated quote`);
  return raw.trimEnd();
}

function scalar(text: string, no: number): YamlValue {
  const t = text.trim();
  if (t.startsWith('"')) {
    if (!t.endsWith('"') || t.length < 2) throw new Error(`line ${no}: bad double-quoted scalar`);
    return JSON.parse(t) as string;
  }
  if (t.startsWith("'")) {
    if (!t.endsWith("'") || t.length < 2) throw new Error(`line ${no}: bad single-quoted scalar`);
    return t.slice(1, -1).replaceAll("''", "'");
  }
  if (t === '{}') return {};
  if (t === '[]') return [];
  if (t.startsWith('[')) {
    if (!t.endsWith(']')) throw new Error(`line ${no}: flow sequence not closed on its line`);
    const items: YamlValue[] = [];
    let cur = '';
    let quote: string | null = null;
    for (const c of t.slice(1, -1)) {
      if (quote) {
        cur += c;
        if (c === quote) quote = null;
      } else if (c === '"' || c === "'") {
        quote = c;
        cur += c;
      } else if (c === ',') {
        items.push(scalar(cur, no));
        cur = '';
      } else if ('[]{}'.includes(c)) throw new Error(`line ${no}: nested flow collections are not read`);
      else cur += c;
    }
    if (cur.trim() !== '') items.push(scalar(cur, no));
    return items;
  }
  if (/^[&*!|>{]/.test(t)) throw new Error(`line ${no}: "${t[0]}" is not read by this subset`);
  if (t === '' || t === '~' || t === 'null') return null;
  if (t === 'true') return true;
  if (t === 'false') return false;
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  if (/: |:$/.test(t)) throw new Error(`line ${no}: a plain scalar with ": " (quote it)`);
  return t;
}

/** `key: rest` (key plain or quoted), or null when the text is not a mapping entry. */
function entry(text: string, no: number): [string, string] | null {
  const m = /^("(?:[^"\\]|\\.)*"|'[^']*'|[^\s"'#:][^:]*?):(?:\s+(.*))?$/.exec(text);
  if (!m) return null;
  const key = scalar(m[1], no);
  if (typeof key !== 'string' && typeof key !== 'number') throw new Error(`line ${no}: bad key`);
  return [String(key), m[2] ?? ''];
}

export function parseYamlSubset(source: string): YamlValue {
  const lines: Line[] = [];
  source.split('\n').forEach((raw, i) => {
    const no = i + 1;
    if (/^\s*\t/.test(raw)) throw new Error(`line ${no}: tab in indentation`);
    if (/^(---|\.\.\.)\s*$/.test(raw)) throw new Error(`line ${no}: one document only`);
    const text = stripComment(raw, no);
    if (text.trim() === '') return;
    const indent = text.length - text.trimStart().length;
    lines.push({ no, indent, text: text.trimStart() });
  });
  let pos = 0;

  function block(indent: number): YamlValue {
    const first = lines[pos];
    if (first.text === '-' || first.text.startsWith('- ')) return sequence(indent);
    return mapping(indent);
  }

  function mapping(indent: number): { [key: string]: YamlValue } {
    const out: { [key: string]: YamlValue } = {};
    while (pos < lines.length && lines[pos].indent === indent) {
      const line = lines[pos];
      const kv = entry(line.text, line.no);
      if (!kv) throw new Error(`line ${line.no}: expected "key: value"`);
      const [key, rest] = kv;
      if (Object.hasOwn(out, key)) throw new Error(`line ${line.no}: duplicate key "${key}"`);
      pos++;
      out[key] = rest !== '' ? scalar(rest, line.no) : nested(indent, line.no);
    }
    if (pos < lines.length && lines[pos].indent > indent)
      throw new Error(`line ${lines[pos].no}: unexpected indentation`);
    return out;
  }

  function sequence(indent: number): YamlValue[] {
    const out: YamlValue[] = [];
    while (pos < lines.length && lines[pos].indent === indent && /^-( |$)/.test(lines[pos].text)) {
      const line = lines[pos];
      const rest = line.text.slice(1).trimStart();
      if (rest === '') {
        pos++;
        out.push(nested(indent, line.no));
      } else if (entry(rest, line.no)) {
        // "- key: value" and the keys below it form one mapping, indented past the dash.
        const inner = indent + (line.text.length - rest.length);
        lines[pos] = { no: line.no, indent: inner, text: rest };
        out.push(mapping(inner));
      } else {
        pos++;
        out.push(scalar(rest, line.no));
      }
    }
    if (pos < lines.length && lines[pos].indent > indent)
      throw new Error(`line ${lines[pos].no}: unexpected indentation`);
    return out;
  }

  function nested(parentIndent: number, no: number): YamlValue {
    if (pos >= lines.length || lines[pos].indent <= parentIndent) {
      // A sequence may sit at its key's indentation ("key:\n- a").
      if (pos < lines.length && lines[pos].indent === parentIndent && /^-( |$)/.test(lines[pos].text))
        return sequence(parentIndent);
      return null;
    }
    if (lines[pos].indent <= parentIndent) throw new Error(`line ${no}: nothing nested`);
    return block(lines[pos].indent);
  }

  if (lines.length === 0) return null;
  if (lines[0].indent !== 0) throw new Error(`line ${lines[0].no}: the document starts indented`);
  const doc = block(0);
  if (pos < lines.length) throw new Error(`line ${lines[pos].no}: unexpected content`);
  return doc;
}
