// One seeding process: `node --import tsx bench/seed-worker.ts <acmed.yaml> <from> <count>`.
// The scale benchmark runs one per core, so 100,000 certificates are written
// in parallel through acmed's own storage backend.
import { loadConfig } from '../src/config/load.js';
import { createStorage } from '../src/storage/index.js';
import { seedStore } from './seed.js';

const [configPath, from, count] = process.argv.slice(2);
const storage = await createStorage(await loadConfig(configPath!));
try {
  await seedStore(storage, Number(count), { from: Number(from) });
} finally {
  await storage.close();
}
