/**
 * The storage contract every backend implements. Five verbs over string keys
 * and values (get, set, add, delete, list) carry acmed's own state: account,
 * locks, challenge tokens, backoff records. Two more (putCertificate,
 * getCertificate) write and read the terminator-facing copy, whose layout is
 * each backend's own (certbot tree for files, one key for Redis, …).
 *
 * Keys are "/"-separated paths of safe segments (see keys.ts).
 */

/**
 * The RSA certificate kept beside the primary one (`cert_type: [ecc, rsa]`):
 * same names, its own key, stored under the `-rsa` names
 * (`fullchain-rsa.pem`, field `fullchain-rsa`, …) in the same write.
 */
export interface CertificateVariant {
  /** Leaf certificate PEM. */
  cert: string;
  /** Intermediates PEM (without the leaf). */
  chain: string;
  /** Leaf followed by intermediates. */
  fullchain: string;
  /** Private key PEM (PKCS#8). */
  privkey: string;
  notBefore: string;
  notAfter: string;
}

/**
 * A certificate with its key, as the terminator consumes it. The plain
 * fields hold the primary certificate (ECDSA when both types are kept, else
 * the one type asked for); `rsa` the RSA one kept beside it, if any. Both
 * are written and read as one: a write without `rsa` leaves no RSA copy.
 */
export interface CertificateBundle extends CertificateVariant {
  /** The certificate's first name: where it is stored. */
  name: string;
  names: string[];
  rsa?: CertificateVariant;
}

export interface Storage {
  /** Backend name, as in the config's `storage` key. */
  readonly kind: string;
  /** True when several acmed instances may share this store. */
  readonly shared: boolean;
  get(key: string): Promise<string | null>;
  set(key: string, value: string, opts?: { ttlMs?: number }): Promise<void>;
  /** Sets key only if absent (or expired); the lock primitive. True when it was set. */
  add(key: string, value: string, ttlMs: number): Promise<boolean>;
  delete(key: string): Promise<void>;
  /**
   * Deletes key only while it still holds value (a lock's owner token), in one
   * step where the store allows it, so a holder whose lock expired and was
   * taken over cannot delete the new holder's lock. True when deleted.
   */
  compareAndDelete(key: string, value: string): Promise<boolean>;
  /** Gives key a new TTL only while it still holds value (a lock heartbeat). True when extended. */
  compareAndExtend(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** Keys that start with prefix, in no particular order. */
  list(prefix: string): Promise<string[]>;
  /**
   * Every live key under prefix with its value, handed over in batches (no
   * particular order): the index loads 100,000 records this way in one pass
   * instead of a list and 100,000 gets. Backends without a cheaper way leave
   * it out; callers then fall back to list and get.
   */
  scan?(prefix: string, onBatch: (entries: [key: string, value: string][]) => void): Promise<void>;
  /** Writes a certificate so a reader never sees a new fullchain with an old key. */
  putCertificate(bundle: CertificateBundle): Promise<void>;
  getCertificate(name: string): Promise<CertificateBundle | null>;
  /**
   * The stored leaf certificate's PEM alone, unparsed: the index's
   * reconciliation compares 100,000 serials with it. Backends where the
   * leaf is cheaper to read than the bundle offer it; others are read
   * through getCertificate.
   */
  getCertificatePem?(name: string): Promise<string | null>;
  /** Removes a certificate from what the terminator reads (file storage keeps its archive). */
  deleteCertificate(name: string): Promise<void>;
  /** Where a terminator finds this certificate, for humans ("/var/lib/acmed/live/a.example.com/"). */
  location(name: string): string;
  /** Names of the certificates held. */
  listCertificates(): Promise<string[]>;
  /** Bytes free for acmed where the store keeps its data (local disks only), for health reports. */
  freeBytes?(): Promise<number>;
  /**
   * Clears what a process killed in the middle of a write left behind (temp
   * files, a half-written certificate version), once after start; writes
   * that begin after the call are not touched, so it may run beside them.
   * Returns what it removed, for the log. Backends whose writes are one
   * remote call need none.
   */
  recover?(): Promise<string[]>;
  close(): Promise<void>;
}
