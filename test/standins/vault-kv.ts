// The Vault stand-in's KV version 2 engine for one mount: versioned secrets
// with check-and-set writes, reads of the latest version, folder listing and
// metadata delete (all versions), as Vault's KV v2 API docs describe them.

export interface VersionMetadata {
  created_time: string;
  custom_metadata: null;
  deletion_time: string;
  destroyed: boolean;
  version: number;
}

interface Secret {
  versions: { data: Record<string, unknown>; meta: VersionMetadata }[];
}

export type WriteOutcome = { ok: true; meta: VersionMetadata } | { ok: false; error: string };

export class KvV2Mount {
  private secrets = new Map<string, Secret>();

  read(path: string): { data: Record<string, unknown>; metadata: VersionMetadata } | null {
    const secret = this.secrets.get(path);
    const latest = secret?.versions.at(-1);
    return latest ? { data: latest.data, metadata: latest.meta } : null;
  }

  /** cas: unset writes unconditionally; 0 only when the key does not exist; n only when n is the current version. */
  write(path: string, data: Record<string, unknown>, cas?: number): WriteOutcome {
    const secret = this.secrets.get(path);
    const current = secret?.versions.length ?? 0;
    if (cas !== undefined && cas !== current) return { ok: false, error: 'check-and-set parameter did not match the current version' };
    const meta: VersionMetadata = {
      created_time: new Date().toISOString(), custom_metadata: null, deletion_time: '', destroyed: false, version: current + 1,
    };
    const next = secret ?? { versions: [] };
    next.versions.push({ data, meta });
    this.secrets.set(path, next);
    return { ok: true, meta };
  }

  /** Immediate children of a folder: secrets by name, sub-folders with a trailing "/". */
  list(folder: string): string[] {
    const prefix = folder === '' || folder.endsWith('/') ? folder : `${folder}/`;
    const keys = new Set<string>();
    for (const path of this.secrets.keys()) {
      if (!path.startsWith(prefix)) continue;
      const rest = path.slice(prefix.length);
      const slash = rest.indexOf('/');
      keys.add(slash === -1 ? rest : rest.slice(0, slash + 1));
    }
    return [...keys].sort();
  }

  /** Deletes every version and the metadata: the key is gone, cas 0 works again. */
  deleteMetadata(path: string): void {
    this.secrets.delete(path);
  }
}
