/**
 * Finds the admin socket for client commands: --socket, else admin.socket in
 * the config file. Only the YAML is parsed here (no schema), which keeps
 * "acmed issue" quick to start and usable even when another key is wrong.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { resolveConfigPath } from '../config/path.js';

const DEFAULT_SOCKET = '/run/acmed/admin.sock';

export function resolveSocketPath(opts: { socket?: string; config?: string }): string {
  if (opts.socket) return opts.socket;
  const configPath = resolveConfigPath(opts.config);
  let text: string;
  try {
    text = readFileSync(configPath, 'utf8');
  } catch {
    return DEFAULT_SOCKET;
  }
  try {
    const socket = (parse(text) as { admin?: { socket?: unknown } } | null)?.admin?.socket;
    return typeof socket === 'string' && socket !== '' ? socket : DEFAULT_SOCKET;
  } catch {
    return DEFAULT_SOCKET;
  }
}
