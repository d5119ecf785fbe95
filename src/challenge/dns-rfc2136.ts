/**
 * The RFC 2136 provider: dynamic updates, signed with TSIG (tsig.ts), sent
 * over TCP to the primary server (BIND, Knot, PowerDNS, Windows DNS...).
 * present() adds one TXT value; cleanup() deletes that one value (class NONE,
 * RFC 2136 §2.5.4), so other values at the same name, e.g. the apex's beside
 * the wildcard's, or another tool's, stay.
 *
 * dns-packet encodes the header, names and TXT data; it knows no class NONE
 * (254), so a delete record is encoded as class IN and its class field set
 * afterwards (the two bytes after the name and type).
 */
import dnsPacket from 'dns-packet';
import { readFile } from 'node:fs/promises';
import type { DnsProvider, TxtRecord } from './dns-provider.js';
import { exchangeTcp, formatServer, newMessageId, parseServer, type DnsServer } from './dns-transport.js';
import { parseTsigSecret, signMessage, TSIG_ERRORS, verifyAnswer, type TsigAlgorithm, type TsigKey } from './tsig.js';

/** TTL of the challenge records: short, so a resolver caches a wrong answer only briefly. */
export const CHALLENGE_TTL_SECONDS = 60;
const OPCODE_UPDATE = 5 << 11;
const CLASS_NONE = 254;
const UPDATE_TIMEOUT_MS = 10_000;

export interface Rfc2136Options {
  server: string;
  tsig_key_name: string;
  tsig_algorithm: TsigAlgorithm;
  tsig_secret_file: string;
}

/** A refused update: names the server and the DNS rcode (and TSIG error), never the secret. */
export class DnsUpdateError extends Error {
  readonly code = 'DNS_UPDATE_REFUSED';
  constructor(readonly server: string, readonly rcode: string, readonly tsigError: string | null, record: string) {
    super(`DNS server ${server} refused the update of ${record}: ${rcode}${tsigError ? ` (TSIG error ${tsigError})` : ''}`);
  }
}

interface AnswerCodec {
  encode(record: { name: string; type: 'TXT'; class: 'IN'; ttl: number; data: string }): Buffer;
}
/** dns-packet's record codec (exported at runtime, missing from its type declarations). */
const recordCodec = (dnsPacket as unknown as { answer: AnswerCodec }).answer;

function txtRecord(record: TxtRecord, ttl: number, klass?: number): Buffer {
  const encoded = recordCodec.encode({ name: record.fqdn, type: 'TXT', class: 'IN', ttl, data: record.value });
  if (klass !== undefined) {
    // name, type (2), class (2), TTL (4), rdata length (2), rdata
    const nameLength = encoded.length - 10 - txtLength(record.value);
    encoded.writeUInt16BE(klass, nameLength + 2);
  }
  return encoded;
}

/** Bytes of a one-string TXT rdata. */
function txtLength(value: string): number {
  return Buffer.byteLength(value) + 1;
}

/** An UPDATE message for zone with one change in its update section. */
export function updateMessage(id: number, zone: string, change: Buffer): Buffer {
  const head = dnsPacket.encode({ type: 'query', id, flags: OPCODE_UPDATE, questions: [{ name: zone, type: 'SOA', class: 'IN' }] });
  const message = Buffer.concat([head, change]);
  message.writeUInt16BE(1, 8); // the update section (NSCOUNT)
  return message;
}

export class Rfc2136Provider implements DnsProvider {
  readonly kind = 'rfc2136';
  readonly lookupServer: DnsServer;

  private constructor(private readonly server: DnsServer, private readonly key: TsigKey) {
    this.lookupServer = server;
  }

  /** Reads the TSIG secret file now, so a missing or malformed one stops the start, not the first order. */
  static async create(opts: Rfc2136Options): Promise<Rfc2136Provider> {
    let text: string;
    try {
      text = await readFile(opts.tsig_secret_file, 'utf8');
    } catch (err) {
      throw new Error(`cannot read dns.rfc2136.tsig_secret_file ${opts.tsig_secret_file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const secret = parseTsigSecret(text, opts.tsig_algorithm, opts.tsig_secret_file);
    return new Rfc2136Provider(parseServer(opts.server), { name: opts.tsig_key_name, algorithm: opts.tsig_algorithm, secret });
  }

  present(record: TxtRecord): Promise<void> {
    return this.send(record, txtRecord(record, CHALLENGE_TTL_SECONDS), 'add');
  }

  cleanup(record: TxtRecord): Promise<void> {
    // Deleting an RR that is not there succeeds (RFC 2136 §3.4.2.4), so a repeated cleanup is harmless.
    return this.send(record, txtRecord(record, 0, CLASS_NONE), 'delete');
  }

  private async send(record: TxtRecord, change: Buffer, what: string): Promise<void> {
    const id = newMessageId();
    const { signed, mac } = signMessage(updateMessage(id, record.zone, change), this.key);
    const answer = await exchangeTcp(this.server, signed, id, UPDATE_TIMEOUT_MS);
    const rcodeValue = answer.readUInt16BE(2) & 0xf;
    const tsig = verifyAnswer(answer, mac, this.key);
    const where = `${what} TXT ${record.fqdn} in zone ${record.zone}`;
    if (rcodeValue !== 0 || tsig.error !== 0) {
      throw new DnsUpdateError(formatServer(this.server), rcodeName(rcodeValue), tsig.error ? TSIG_ERRORS[tsig.error] ?? String(tsig.error) : null, where);
    }
    // A success we cannot authenticate may be forged: do not believe it.
    if (!tsig.verified) throw new DnsUpdateError(formatServer(this.server), 'NOERROR', tsig.unsigned ? 'answer not signed' : 'answer MAC does not verify', where);
  }
}

function rcodeName(value: number): string {
  const names = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE'];
  return names[value] ?? `RCODE ${value}`;
}
