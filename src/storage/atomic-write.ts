/**
 * Atomic file replacement: write a temp file in the same directory, fsync it,
 * rename it over the target, fsync the directory. A crash leaves either the
 * old file or the new one, never a torn one.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export async function ensureDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    // Node's recursive mkdir reports ENOENT when a level could not be made
    // for another reason (EROFS, ENOSPC, EACCES: nodejs/node#47098): one level
    // at a time finds the real error, which says the disk is at fault.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await makeEachLevel(dir);
  }
}

async function makeEachLevel(dir: string): Promise<void> {
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || dirname(dir) === dir) throw err;
    await makeEachLevel(dirname(dir));
    await mkdir(dir, { mode: 0o700 }).catch((again: NodeJS.ErrnoException) => {
      if (again.code !== 'EEXIST') throw again;
    });
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Creates path (O_EXCL: fails with EEXIST if it is there) holding data with
 * mode, fsynced; no rename. If writing fails after the create (a full disk),
 * the file is removed again: an empty or half-written file would otherwise
 * stay behind and look like a real value (a lock held for ever).
 */
export async function writeNewFile(path: string, data: string, mode: number): Promise<void> {
  const handle = await open(path, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.chmod(mode); // the umask may have narrowed the mode; be explicit
    await handle.sync();
    await handle.close(); // on a network file system, close can be where a write error shows
  } catch (err) {
    await handle.close().catch(() => {});
    await rm(path, { force: true }).catch(() => {});
    throw err;
  }
}

export async function writeFileAtomic(target: string, data: string, mode = 0o600): Promise<void> {
  await ensureDir(dirname(target));
  const temp = tempPathFor(target);
  try {
    await writeNewFile(temp, data, mode);
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => {}); // keep the write's own error, not a cleanup one
    throw err;
  }
  await fsyncDir(dirname(target));
}
