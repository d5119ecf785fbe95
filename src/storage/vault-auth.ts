/**
 * How the Vault backend gets its token: a fixed token (auth_method token), or
 * a Kubernetes service-account login (auth_method kubernetes) at
 * auth/<auth_path>/login, redone when Vault refuses the token it issued
 * (expired or revoked). The service-account JWT is re-read at every login
 * because Kubernetes rotates projected tokens.
 */
import { readFile } from 'node:fs/promises';
import type NodeVault from 'node-vault';
import type { Config } from '../config/schema.js';
import { StorageError } from './errors.js';

export const DEFAULT_JWT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/token';
export const DEFAULT_KUBERNETES_MOUNT = 'kubernetes';

type AuthOptions = Pick<Config['storage_config']['vault'], 'auth_method' | 'token' | 'auth_path' | 'auth_role' | 'jwt_path'>;

export interface VaultAuth {
  /** Makes sure the client holds a token, logging in when it has none. */
  ready(): Promise<void>;
  /** True when a refused token can be replaced by logging in again. */
  readonly canLogInAgain: boolean;
  /** Forgets a token Vault refused, unless another call already replaced it. */
  drop(token: string): void;
}

export function createVaultAuth(client: NodeVault.client, opts: AuthOptions, where: string): VaultAuth {
  if (opts.auth_method === 'token') {
    // Set explicitly: node-vault would otherwise fall back to $VAULT_TOKEN.
    client.token = opts.token ?? '';
    return {
      canLogInAgain: false,
      async ready() {
        if (!client.token) throw new StorageError(`${where}: storage_config.vault.token is not set (auth_method: token)`);
      },
      drop() {},
    };
  }

  const mount = opts.auth_path ?? DEFAULT_KUBERNETES_MOUNT;
  client.token = '';
  let login: Promise<void> | null = null;

  const logIn = async () => {
    const role = opts.auth_role;
    if (!role) throw new StorageError(`${where}: auth_method kubernetes needs storage_config.vault.auth_role`);
    const jwtPath = opts.jwt_path ?? DEFAULT_JWT_PATH;
    let jwt: string;
    try {
      jwt = (await readFile(jwtPath, 'utf8')).trim();
    } catch (err) {
      throw new StorageError(`${where}: cannot read the service account token ${jwtPath}: ${(err as Error).message}`);
    }
    try {
      // mount_point is always passed, so auth_path is honoured whatever node-vault's own default.
      await client.kubernetesLogin({ role, jwt, mount_point: mount });
    } catch (err) {
      throw new StorageError(`${where}: kubernetes login as role "${role}" at auth/${mount} failed: ${(err as Error).message}`, { cause: err });
    }
  };

  return {
    canLogInAgain: true,
    ready() {
      if (client.token) return Promise.resolve();
      login ??= logIn().finally(() => {
        login = null;
      });
      return login;
    },
    drop(token) {
      if (client.token === token) client.token = '';
    },
  };
}
