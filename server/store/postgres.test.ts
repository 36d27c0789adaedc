/**
 * The store conformance suite on a real Postgres server: TUNEFORGE_TEST_POSTGRES (a postgres:// URL of a role that
 * may create databases; .ci/run starts a local server and sets it). Each run uses a database of its own, dropped
 * afterwards. Without a reachable server the suite is skipped with a message.
 */
import { afterAll, describe, test } from 'bun:test';
import postgres from 'postgres';
import { storeConformance } from './conformance.ts';
import { openStore } from './index.ts';

const adminUrl = process.env.TUNEFORGE_TEST_POSTGRES;
let reachable = false;
const database = `tuneforge_test_${process.pid}_${Date.now().toString(36)}`;
if (adminUrl) {
  try {
    const admin = postgres(adminUrl, { max: 1, connect_timeout: 3, onnotice: () => {} });
    await admin.unsafe(`CREATE DATABASE ${database}`);
    await admin.end();
    reachable = true;
  } catch (e) {
    console.warn(`skipping the Postgres store suite: cannot create a database at TUNEFORGE_TEST_POSTGRES (${(e as Error).message})`);
  }
} else {
  console.warn('skipping the Postgres store suite: set TUNEFORGE_TEST_POSTGRES to a postgres:// URL (.ci/run starts a local server)');
}

const url = (() => {
  if (!adminUrl) return '';
  const u = new URL(adminUrl);
  u.pathname = `/${database}`;
  return u.toString();
})();

if (reachable) {
  storeConformance('postgres', () => openStore(url), () => openStore(url));
  afterAll(async () => {
    const admin = postgres(adminUrl!, { max: 1, onnotice: () => {} });
    await admin.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.end();
  });
} else {
  describe.skip('store conformance: postgres', () => test('needs a Postgres server', () => {}));
}
