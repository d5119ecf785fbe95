/**
 * What the schema says about key names: the keys known at a place (for "did
 * you mean" on a misspelt key) and every key path (the docs are checked
 * against it, so the reference cannot drift from the code).
 */
import { closest, distance } from 'fastest-levenshtein';
import { z } from 'zod';
import { configSchema } from './schema.js';

/** The keys an object in the schema accepts at a path of the config (array indexes skipped). */
export function knownKeysAt(path: PropertyKey[]): string[] {
  let schema: z.ZodType | undefined = unwrap(configSchema);
  for (const segment of path) {
    if (schema instanceof z.ZodArray) schema = unwrap(schema.element as z.ZodType);
    if (typeof segment === 'number') continue;
    schema = schema instanceof z.ZodObject ? unwrap(schema.shape[segment as string] as z.ZodType | undefined) : undefined;
  }
  if (schema instanceof z.ZodArray) schema = unwrap(schema.element as z.ZodType);
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

/** ' (did you mean "x"?)' when a known key is a few edits away, else ''. */
export function suggestKey(key: string, known: string[]): string {
  if (known.length === 0) return '';
  const best = closest(key, known);
  // Two edits (a swap is two), or a third of a long key: "hots" → "host", but not "zzz" → "ssl".
  return distance(key, best) <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

/** Every key path of the config, dotted ("storage_config.redis.host"); arrays of objects add their keys ("certificates.names"). */
export function configKeyPaths(): string[] {
  const paths: string[] = [];
  const walk = (schema: z.ZodType | undefined, prefix: string) => {
    let node = unwrap(schema);
    if (node instanceof z.ZodArray) node = unwrap(node.element as z.ZodType);
    if (!(node instanceof z.ZodObject)) return;
    for (const [key, child] of Object.entries(node.shape)) {
      const path = prefix ? `${prefix}.${key}` : key;
      paths.push(path);
      walk(child as z.ZodType, path);
    }
  };
  walk(configSchema, '');
  return paths;
}

function unwrap(schema: z.ZodType | undefined): z.ZodType | undefined {
  let current = schema;
  for (;;) {
    if (current instanceof z.ZodDefault || current instanceof z.ZodNullable || current instanceof z.ZodOptional) {
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodPipe) {
      current = current.in as z.ZodType;
    } else {
      return current;
    }
  }
}
