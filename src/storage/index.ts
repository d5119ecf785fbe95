/**
 * Picks the backend named by `storage`. A backend is one file exporting a
 * factory; adding one is adding a file and a line here. Backends are loaded
 * lazily so a file-storage daemon never loads a Redis client.
 */
import type { Config } from '../config/schema.js';
import { withEncryption } from './encrypted.js';
import { Keyring } from './keyring.js';
import type { Storage } from './storage.js';

type Factory = (config: Config) => Promise<Storage>;

const backends: Record<Config['storage'], Factory | undefined> = {
  file: async (config) => (await import('./file.js')).createFileStorage({
    ...config.storage_config.file, haproxyPem: config.haproxy_pem, shared: config.cluster,
  }),
  memory: async () => (await import('./memory.js')).createMemoryStorage(),
  redis: async (config) => (await import('./redis.js')).createRedisStorage(config.storage_config.redis),
  consul: async (config) => (await import('./consul.js')).createConsulStorage(config.storage_config.consul),
  vault: async (config) => (await import('./vault.js')).createVaultStorage(config.storage_config.vault),
  etcd: async (config) => (await import('./etcd.js')).createEtcdStorage(config.storage_config.etcd),
  kubernetes: async (config) => (await import('./kubernetes.js')).createKubernetesStorage({
    ...config.storage_config.kubernetes, kubeconfig: config.kubernetes.kubeconfig,
  }),
};

export class UnsupportedStorageError extends Error {
  readonly code = 'STORAGE_UNSUPPORTED';
}

export async function createStorage(config: Config): Promise<Storage> {
  const factory = backends[config.storage];
  if (!factory) throw new UnsupportedStorageError(`storage "${config.storage}" is not available in this build yet`);
  // Read the keyring before connecting, so a bad key file fails fast.
  const keyring = config.keyring_key_file ? await Keyring.load(config.keyring_key_file) : undefined;
  const storage = await factory(config);
  return keyring ? withEncryption(storage, keyring) : storage;
}

export type { Storage, CertificateBundle } from './storage.js';
