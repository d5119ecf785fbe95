/**
 * Reads a YAML config file and validates it. Every problem, YAML syntax or
 * schema, comes back as "file:line:col: message" pointing at the offending
 * key or value, so an operator can jump straight to it.
 */
import { readFile } from 'node:fs/promises';
import { isMap, isPair, isScalar, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';
import { knownKeysAt, suggestKey } from './suggest.js';

export interface ConfigProblem {
  line: number;
  col: number;
  message: string;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly file: string, readonly problems: ConfigProblem[]) {
    super(problems.map((p) => formatProblem(file, p)).join('\n'));
  }

  /** One line per problem, as printed by check-config and logged on reload. */
  lines(): string[] {
    return this.problems.map((p) => formatProblem(this.file, p));
  }
}

/** "file:line:col: message", or "file: message" for a problem with the file as a whole (line 0). */
function formatProblem(file: string, p: ConfigProblem): string {
  return p.line > 0 ? `${file}:${p.line}:${p.col}: ${p.message}` : `${file}: ${p.message}`;
}

export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
    throw new ConfigError(file, [{ line: 0, col: 0, message: `cannot read config: ${reason}` }]);
  }
  return parseConfig(text, file);
}

export function parseConfig(text: string, file = '<config>'): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, col };
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(file, doc.errors.map((e) => ({ ...at(e.pos[0]), message: e.message.split('\n')[0] })));
  }
  const data = doc.toJS() ?? {};
  // reportInput: zod 4 leaves `input` off issues by default, and describe() needs it to tell "missing" from "wrong type".
  const result = configSchema.safeParse(data, { reportInput: true });
  if (result.success) return result.data;
  // One problem per unknown key, each at its own line.
  const issues = result.error.issues.flatMap((issue) => issue.code === 'unrecognized_keys' && issue.keys.length > 1
    ? issue.keys.map((key) => ({ ...issue, keys: [key] }))
    : [issue]);
  const problems = issues.map((issue) => ({ ...at(offsetOf(doc, issue)), message: describe(issue) }))
    .sort((a, b) => a.line - b.line || a.col - b.col);
  throw new ConfigError(file, problems);
}

function describe(issue: z.core.$ZodIssue): string {
  const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => `${where}unknown key ${JSON.stringify(key)}${suggestKey(key, knownKeysAt(issue.path))}`).join('; ');
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) return `${where}required`;
  return `${where}${issue.message}`;
}

/** The source offset of the node an issue is about: the unknown key itself, else the value, else its parent. */
function offsetOf(doc: Document, issue: z.core.$ZodIssue): number {
  const path = issue.path as (string | number)[];
  if (issue.code === 'unrecognized_keys') {
    const parent = path.length === 0 ? doc.contents : doc.getIn(path, true);
    if (isMap(parent)) {
      const pair = parent.items.find((item) => isPair(item) && isScalar(item.key) && item.key.value === issue.keys[0]);
      const key = pair?.key as Node | undefined;
      if (key?.range) return key.range[0];
    }
  }
  for (let depth = path.length; depth >= 0; depth--) {
    const node = (depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth), true)) as Node | null | undefined;
    if (node && typeof node === 'object' && 'range' in node && node.range) return node.range[0];
  }
  return 0;
}
