// The DIP service as one OS process on the embedded engine (issue 12): 1,000 concurrent assigns
// against a pool of 100 give exactly 100 distinct IPs and 900 pool_exhausted.

import { test } from 'node:test';
import { openTestStore } from '../../store/test/support.js';
import { assignRequest, limited, mintToken, sealedRequest, startTestService, writeTokenKeys } from './support.js';
import { ENCLAVE, KEY, POOL_OF_100, assertPoolOf100, useFakeParent } from './processes.js';

const fakeParent = useFakeParent();

test('the embedded engine in one process: 1,000 concurrent assigns against a pool of 100 give 100 distinct IPs and 900 pool_exhausted', async () => {
  const store = await openTestStore('embedded');
  const service = await startTestService({ parents: [fakeParent().url], tokenKeys: writeTokenKeys([KEY]), store: store.store, args: POOL_OF_100 });
  try {
    const tokens = Array.from({ length: 1000 }, () => mintToken(KEY).authorization);
    assertPoolOf100(await limited(tokens.map((authorization) => () => assignRequest(service.url, authorization, sealedRequest(ENCLAVE))), 50), 'embedded');
  } finally {
    await service.close();
    await store.close();
  }
});
