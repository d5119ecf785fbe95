/** Small request/response helpers shared by the admin API routes. */
import type http from 'node:http';
import { AcmedError } from '../errors.js';

const MAX_BODY_BYTES = 64 * 1024;

/** An error of the request itself (bad parameter, body too large), with its status. */
export class HttpError extends AcmedError {
  override readonly code = 'BAD_REQUEST';
  constructor(private readonly httpStatus: number, message: string, readonly extra: Record<string, unknown> = {}) {
    super(message);
  }

  override get status(): number {
    return this.httpStatus;
  }

  override apiBody(): Record<string, unknown> {
    return { ...super.apiBody(), ...this.extra };
  }
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Reads a JSON or form-encoded body (Kong's admin API takes both) into a flat object. */
export async function readBody(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'request body too large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  const type = String(req.headers['content-type'] ?? '');
  if (type.includes('application/x-www-form-urlencoded')) {
    return Object.fromEntries(new URLSearchParams(text));
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new HttpError(400, 'request body must be a JSON object or form-encoded');
}

/** "true", true, "1", "yes" → true; for flags that arrive as JSON or form fields. */
export function truthy(value: unknown): boolean {
  return value === true || value === 1 || (typeof value === 'string' && ['true', '1', 'yes'].includes(value.toLowerCase()));
}
