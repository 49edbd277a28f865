// One worker thread of the enclave's pool (issue 13): the whole request → response service of
// core/service.ts, with its own copy of the enclave's keys. The boot key is made by the first
// worker and copied to the others; M reaches every worker the same way after an unlock. The NSM
// is asked through the main thread, which owns the device (pool.ts).

import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { toDipError } from '../../protocol/errors.js';
import { generateBootKey, type BootKey } from '../../protocol/hpke.js';
import type { ClockGuard } from '../core/clock.js';
import { openRecipientCiphertext } from '../core/cms.js';
import { createKeyCustody } from '../core/keys.js';
import { createEnclaveService } from '../core/service.js';
import type { Nsm } from '../nsm/nsm.js';
import { EXIT_CRASHED, EXIT_NO_KEYS, type FromWorker, type Reply, type SharedKeys, type ToWorker, type WorkerSetup } from './worker-messages.js';

/** Resolves with the keys another worker posts to `port`, or null if that worker died first. */
function receiveKeys(port: MessagePort): Promise<SharedKeys | null> {
  return new Promise((resolve) => {
    port.once('message', (keys: SharedKeys) => {
      port.close();
      resolve(keys);
    });
    port.once('close', () => resolve(null));
  });
}

/** Serves the pool's messages until the main thread terminates this thread. Call it off the main thread only. */
export async function serveWorker(): Promise<void> {
  const main = parentPort;
  if (main === null) throw new TypeError('serveWorker runs in a worker thread');
  const setup = workerData as WorkerSetup;
  const post = (message: FromWorker): void => main.postMessage(message);
  // Node would pass the error, whose text may hold request data, to the main thread. A bug that
  // escapes every handler ends this thread only, quietly; the pool answers its requests
  // `internal` and starts another worker.
  process.on('uncaughtException', () => process.exit(EXIT_CRASHED));
  process.on('unhandledRejection', () => process.exit(EXIT_CRASHED));

  let bootKey: BootKey;
  const custody = createKeyCustody();
  const installMasterSecret = (masterSecret: Uint8Array | null): void => {
    if (masterSecret === null) return;
    // Another M than the one held throws (impossible by construction): this thread then ends as
    // after any bug, and the pool sees no `taken`.
    try {
      custody.unlock(masterSecret);
    } finally {
      masterSecret.fill(0);
    }
  };
  if (setup.keys === null) {
    bootKey = generateBootKey();
  } else {
    const keys = await receiveKeys(setup.keys);
    if (keys === null) process.exit(EXIT_NO_KEYS);
    bootKey = keys.bootKey;
    installMasterSecret(keys.masterSecret);
  }

  let clockTrusted = setup.clockTrusted;
  const clock: ClockGuard = {
    get trusted() {
      return clockTrusted;
    },
    // The main thread checks the clock against the NSM and tells every worker (`clock`).
    check: async () => clockTrusted,
  };
  const documents = new Map<number, { resolve: (document: Uint8Array) => void; reject: (error: Error) => void }>();
  let nextDocument = 0;
  const nsm: Nsm = {
    attestation: (request) =>
      new Promise((resolve, reject) => {
        const seq = nextDocument++;
        documents.set(seq, { resolve, reject });
        post({ kind: 'attestation', seq, request });
      }),
    close: async () => {},
  };

  const service = await createEnclaveService({
    nsm,
    bootKey,
    custody,
    clock,
    openRecipientCiphertext,
    srtTrust: setup.srtTrust,
    datIssuer: setup.datIssuer,
    version: setup.version,
  });

  // The answers of one batch of requests go back together, once this turn of the event loop is done.
  let replies: Reply[] = [];
  const reply = (answer: Reply): void => {
    if (replies.length === 0) setImmediate(() => post({ kind: 'replies', batch: replies.splice(0) }));
    replies.push(answer);
  };

  main.on('message', (message: ToWorker) => {
    switch (message.kind) {
      case 'requests':
        for (const { seq, request } of message.batch) {
          service.handle(request).then(
            (body) => reply({ seq, ok: true, body }),
            (error: unknown) => reply({ seq, ok: false, code: toDipError(error).code }),
          );
        }
        return;
      case 'give': {
        const masterSecret = custody.copyMasterSecret();
        const keys: SharedKeys = { bootKey, masterSecret };
        // postMessage copies synchronously: this thread's copy of M can be wiped at once.
        message.port.postMessage(keys);
        masterSecret?.fill(0);
        return;
      }
      case 'take':
        void receiveKeys(message.port).then((keys) => {
          // The same boot key: it is made once per enclave, so only M can be news here.
          if (keys !== null) installMasterSecret(keys.masterSecret);
          post({ kind: 'taken', mCommit: custody.mCommit });
        });
        return;
      case 'clock':
        clockTrusted = message.trusted;
        return;
      case 'document': {
        const waiting = documents.get(message.seq);
        documents.delete(message.seq);
        if (message.document === null) waiting?.reject(new Error('the NSM did not answer'));
        else waiting?.resolve(message.document);
        return;
      }
    }
  });
  post({ kind: 'ready', publicKeySpki: bootKey.publicKeySpki, mCommit: custody.mCommit });
}
