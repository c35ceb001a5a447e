import type { AddressInfo, Server } from 'node:net';
import { after, before, test } from 'node:test';
import { MongoStore } from '../../runtime/store/mongodb.js';
import { alarmsMigrationRoundTrip } from '../installer/alarms-migration-case.js';
import { storeContract } from './contract.js';

/*
 * The MongoDB adapter against a real MongoDB when CANOPSIS_TEST_MONGODB_URL
 * is set; otherwise against CongoDB, the in-memory MongoDB wire server of
 * @push.rocks/smartmongo 2.2.0 (the most faithful one the npm registry
 * offers; see docs/store.md for what it does and does not verify).
 */

let store: MongoStore;
let stopServer: (() => Promise<void>) | undefined;
const real = process.env.CANOPSIS_TEST_MONGODB_URL;

before(async () => {
  let url = real;
  if (!url) {
    const { CongoServer } = await import('@push.rocks/smartmongo/dist_ts/congodb/index.js');
    const server = new CongoServer({ host: '127.0.0.1', port: 0 });
    await server.start();
    const { port } = (server as unknown as { server: Server }).server.address() as AddressInfo;
    // Polled heartbeats: CongoDB mishandles the driver's streaming hello (moreToCome), and a failed
    // heartbeat clears the pool under whatever operations are in flight.
    url = `mongodb://127.0.0.1:${port}/?directConnection=true&serverMonitoringMode=poll`;
    stopServer = () => server.stop();
  }
  store = await MongoStore.connect(url, `canopsis_test_${process.pid}_${Date.now()}`);
});

after(async () => {
  await store?.close();
  await stopServer?.();
});

storeContract(real ? 'mongodb (real server)' : 'mongodb (CongoDB wire server)', () => store);

test("mongodb: the 0.4.0 migration reshapes 0.3.0 alarms to Canopsis v4's and back", () => alarmsMigrationRoundTrip(store));
