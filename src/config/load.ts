/**
 * Reads a YAML config file and validates it. Every problem, YAML syntax or
 * schema, comes back as "file:line:col: message" pointing at the offending
 * key or value, so an operator can jump straight to it.
 */
import { isMap, isPair, isScalar, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';
import { knownKeysAt, suggestKey } from './schema-keys.js';
import { ConfigError, parseYaml, readConfigText } from './yaml-source.js';

export { ConfigError, type ConfigProblem } from './yaml-source.js';

export async function loadConfig(file: string): Promise<Config> {
  return parseConfig(await readConfigText(file), file);
}

/** Where key paths' values sit in the config text (for problems found after parsing, e.g. online checks); parsed once. */
export function positionsIn(text: string, file: string): (path: (string | number)[]) => { line: number; col: number } {
  const { doc, at } = parseYaml(text, file);
  return (path) => at(offsetOf(doc, { code: 'custom', path, message: '', input: undefined } as z.core.$ZodIssue));
}

export function parseConfig(text: string, file = '<config>'): Config {
  const { doc, at } = parseYaml(text, file);
  const data = doc.toJS() ?? {};
  // reportInput: zod 4 leaves `input` off issues by default, and describe() needs it to tell "missing" from "wrong type".
  const result = configSchema.safeParse(data, { reportInput: true });
  if (result.success) return result.data;
  // One problem per unknown key, each at its own line.
  const issues = result.error.issues.flatMap((issue) => issue.code === 'unrecognized_keys' && issue.keys.length > 1
    ? issue.keys.map((key) => ({ ...issue, keys: [key] }))
    : [issue]);
  const problems = issues.map((issue) => ({ ...at(offsetOf(doc, issue)), message: describe(issue) }))
    .sort((x, y) => x.line - y.line || x.col - y.col);
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
