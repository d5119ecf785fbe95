/**
 * The config file as YAML, before any schema: reading it, parsing it, and
 * reporting problems as "file:line:col: message". The daemon's loader and
 * the CLI's admin-socket lookup both start here, so a file that cannot be
 * read or parsed is the same clear error in both (the CLI never loads the
 * schema, which keeps `acmed issue` quick to start).
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument, type Document } from 'yaml';

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

export async function readConfigText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw unreadable(file, err);
  }
}

export function readConfigTextSync(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw unreadable(file, err);
  }
}

function unreadable(file: string, err: unknown): ConfigError {
  const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
  return new ConfigError(file, [{ line: 0, col: 0, message: `cannot read config: ${reason}` }]);
}

/** The YAML document and a way to turn source offsets into line:col; YAML errors throw ConfigError. */
export function parseYaml(text: string, file: string): { doc: Document; at: (offset: number) => { line: number; col: number } } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, col };
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(file, doc.errors.map((e) => ({ ...at(e.pos[0]), message: e.message.split('\n')[0] })));
  }
  return { doc, at };
}
