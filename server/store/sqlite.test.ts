/** The store conformance suite on a real SQLite file. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storeConformance } from './conformance.ts';
import { openStore } from './index.ts';

storeConformance('sqlite', () => openStore(join(mkdtempSync(join(tmpdir(), 'tuneforge-store-')), 'store.sqlite')));
