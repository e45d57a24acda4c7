// The YAML front matter of a Markdown-style file (between the first two `---` lines) and its body: enough
// YAML for the seed's tool definition (nested maps, `- item` lists, plain and quoted scalars), no more.
//
// API:
//   parseFrontMatter(text)   { data, body }: data is the parsed YAML, body the text after the closing ---
//                            with surrounding whitespace trimmed. Throws on anything outside that subset.

/** A parsed YAML value. */
export type Yaml = string | number | boolean | null | Yaml[] | { [key: string]: Yaml };

interface Line {
  indent: number;
  text: string;
  number: number;
}

/** Splits `text` into its front matter (parsed) and its body. */
export function parseFrontMatter(text: string): { data: { [key: string]: Yaml }; body: string } {
  const match = /^---\n([\s\S]*?)\n---\n?([\s\S]*)$/.exec(text);
  if (!match) throw new Error("no front matter: the text must start with a --- line and have a closing one");
  const lines: Line[] = match[1]!
    .split("\n")
    .map((raw, i) => ({ indent: raw.length - raw.trimStart().length, text: raw.trim(), number: i + 2 }))
    .filter((line) => line.text !== "" && !line.text.startsWith("#"));
  const cursor = { at: 0 };
  const data = parseBlock(lines, cursor, 0);
  if (cursor.at < lines.length) throw new Error(`line ${lines[cursor.at]!.number}: unexpected indentation`);
  if (Array.isArray(data) || typeof data !== "object" || data === null) throw new Error("front matter is not a map");
  return { data, body: match[2]!.trim() };
}

/** A map or a list whose lines start at `indent`. */
function parseBlock(lines: Line[], cursor: { at: number }, indent: number): Yaml {
  const first = lines[cursor.at];
  if (first === undefined) return null;
  if (first.text.startsWith("- ") || first.text === "-") return parseList(lines, cursor, indent);
  const map: { [key: string]: Yaml } = {};
  while (cursor.at < lines.length) {
    const line = lines[cursor.at]!;
    if (line.indent < indent) break;
    if (line.indent > indent) throw new Error(`line ${line.number}: unexpected indentation`);
    const pair = /^([^:]+):(?:\s+(.*))?$/.exec(line.text);
    if (!pair) throw new Error(`line ${line.number}: expected "key: value"`);
    const key = pair[1]!.trim();
    cursor.at++;
    if (pair[2] !== undefined && pair[2] !== "") {
      map[key] = scalar(pair[2], line.number);
      continue;
    }
    const next = lines[cursor.at];
    // A nested block is indented further; a list may also sit at the key's own indentation.
    if (next && (next.indent > indent || (next.indent === indent && next.text.startsWith("- ")))) {
      map[key] = parseBlock(lines, cursor, next.indent);
    } else {
      map[key] = null;
    }
  }
  return map;
}

function parseList(lines: Line[], cursor: { at: number }, indent: number): Yaml[] {
  const list: Yaml[] = [];
  while (cursor.at < lines.length) {
    const line = lines[cursor.at]!;
    if (line.indent !== indent || !line.text.startsWith("- ")) break;
    const item = line.text.slice(2).trim();
    if (/^[^'"][^:]*:(\s|$)/.test(item)) throw new Error(`line ${line.number}: maps inside lists are not supported`);
    list.push(scalar(item, line.number));
    cursor.at++;
  }
  return list;
}

function scalar(text: string, number: number): Yaml {
  if (text.startsWith("'")) {
    if (!text.endsWith("'") || text.length < 2) throw new Error(`line ${number}: unterminated quote`);
    return text.slice(1, -1).replaceAll("''", "'");
  }
  if (text.startsWith('"')) return JSON.parse(text) as string;
  if (text.startsWith("[") || text.startsWith("{") || text.startsWith("|") || text.startsWith(">")) {
    throw new Error(`line ${number}: flow collections and block scalars are not supported`);
  }
  if (text === "null" || text === "~") return null;
  if (text === "true" || text === "false") return text === "true";
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  return text;
}
