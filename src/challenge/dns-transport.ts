/**
 * Sends one DNS message to one server and returns the answer: UDP for
 * queries (TCP when the answer comes back truncated), TCP for updates (one
 * reliable exchange, never a retransmitted update). Encoding is dns-packet's;
 * this file only moves bytes, with a timeout, and checks the answer's ID.
 *
 * Our own resolver rather than node:dns because c-ares caches answers
 * (negative ones too): a propagation check must see the server's answer of
 * now, and must ask the exact server and port it is told to.
 */
import { createSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { connect } from 'node:net';
import dnsPacket, { type DecodedPacket, type RecordType } from 'dns-packet';

export interface DnsServer {
  host: string;
  port: number;
}

export class DnsTimeoutError extends Error {
  readonly code = 'DNS_TIMEOUT';
}

const DEFAULT_TIMEOUT_MS = 5_000;

/** "host:port", "[v6]:port" or a bare host (port 53). */
export function parseServer(value: string): DnsServer {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
  if (bracketed) return { host: bracketed[1], port: Number(bracketed[2] ?? 53) };
  const colon = value.lastIndexOf(':');
  if (colon > 0 && value.indexOf(':') === colon) return { host: value.slice(0, colon), port: Number(value.slice(colon + 1)) };
  return { host: value, port: 53 };
}

export function formatServer(server: DnsServer): string {
  return server.host.includes(':') ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
}

export function newMessageId(): number {
  return randomInt(0, 0x10000);
}

/** Asks one question without recursion (authoritative servers answer from their zones). */
export async function query(
  server: DnsServer, name: string, type: RecordType, opts: { timeoutMs?: number; recursion?: boolean } = {},
): Promise<DecodedPacket> {
  const id = newMessageId();
  const message = dnsPacket.encode({
    type: 'query', id, flags: opts.recursion ? dnsPacket.RECURSION_DESIRED : 0, questions: [{ type, name, class: 'IN' }],
  });
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let answer = dnsPacket.decode(await exchangeUdp(server, message, id, timeoutMs));
  if (answer.flag_tc) answer = dnsPacket.decode(await exchangeTcp(server, message, id, timeoutMs));
  return answer;
}

export function exchangeUdp(server: DnsServer, message: Buffer, id: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(server.host.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => finish(new DnsTimeoutError(`no answer from DNS server ${formatServer(server)} within ${timeoutMs} ms`)), timeoutMs);
    const finish = (err: Error | null, reply?: Buffer) => {
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(reply!);
    };
    socket.on('error', (err) => finish(new Error(`DNS server ${formatServer(server)}: ${err.message}`)));
    socket.on('message', (reply) => {
      // A stray datagram (late answer to an earlier query) is not ours: keep waiting.
      if (reply.length >= 2 && reply.readUInt16BE(0) === id) finish(null, reply);
    });
    socket.send(message, server.port, server.host);
  });
}

export function exchangeTcp(server: DnsServer, message: Buffer, id: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: server.host, port: server.port });
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new DnsTimeoutError(`no answer from DNS server ${formatServer(server)} (TCP) within ${timeoutMs} ms`)), timeoutMs);
    const finish = (err: Error | null, reply?: Buffer) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    socket.on('error', (err) => finish(new Error(`DNS server ${formatServer(server)}: ${err.message}`)));
    socket.on('connect', () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(message.length);
      socket.write(Buffer.concat([length, message]));
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 2) return;
      const size = received.readUInt16BE(0);
      if (received.length < size + 2) return;
      const reply = received.subarray(2, size + 2);
      if (reply.length < 2 || reply.readUInt16BE(0) !== id) finish(new Error(`DNS server ${formatServer(server)} answered another message`));
      else finish(null, reply);
    });
    socket.on('end', () => finish(new Error(`DNS server ${formatServer(server)} closed the connection without an answer`)));
  });
}
