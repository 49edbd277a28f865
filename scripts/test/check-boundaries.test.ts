import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkFile, checkTree } from '../check-boundaries.js';

const rules = (file: string, source: string): string[] => checkFile(file, source).map((v) => v.rule);

test('the repository itself respects the trust boundary', () => {
  assert.deepEqual(checkTree(process.cwd()), []);
});

test('enclave/ may not import parent/ or client/', () => {
  assert.equal(rules('enclave/core/service.ts', "import { x } from '../../parent/server.js';").length, 1);
  assert.equal(rules('enclave/io/server.ts', "export { y } from '../../client/attestation.js';").length, 1);
  assert.equal(rules('enclave/main.ts', "const m = await import('../client/flows.js');").length, 1);
});

test('enclave/core may not do I/O', () => {
  assert.equal(rules('enclave/core/tokens.ts', "import { readFileSync } from 'node:fs';").length, 1);
  assert.equal(rules('enclave/core/tokens.ts', "import net from 'net';").length, 1);
  assert.equal(rules('enclave/core/tokens.ts', "import { x } from '../io/server.js';").length, 1);
  assert.deepEqual(rules('enclave/core/tokens.ts', "import { createHash } from 'node:crypto';"), []);
  assert.deepEqual(rules('enclave/io/server.ts', "import net from 'node:net';"), []);
});

test('protocol/ does no I/O and depends on nothing else', () => {
  assert.equal(rules('protocol/frame.ts', "import { connect } from 'node:net';").length, 1);
  assert.equal(rules('protocol/frame.ts', "import { x } from '../enclave/core/keys.js';").length, 1);
  assert.deepEqual(rules('protocol/hpke.ts', "import { createECDH } from 'node:crypto';"), []);
});

test('parent/ uses protocol framing only and never opens tokens', () => {
  assert.equal(rules('parent/server.ts', "import { openRequest } from '../protocol/hpke.js';").length, 2);
  assert.equal(rules('parent/server.ts', "import { jwtVerify } from 'jose';").length, 2);
  assert.equal(rules('parent/server.ts', "import { x } from '../enclave/core/service.js';").length, 1);
  assert.equal(rules('parent/server.ts', "import { x } from '../client/sdk.js';").length, 1);
  assert.equal(rules('parent/server.ts', "import { x } from '@noble/curves/nist.js';").length, 1);
  assert.deepEqual(rules('parent/server.ts', "import { FrameReader } from '../protocol/frame.js';"), []);
});

test('client/ depends on protocol/ only', () => {
  assert.equal(rules('client/flows.ts', "import { x } from '../enclave/core/service.js';").length, 1);
  assert.deepEqual(rules('client/flows.ts', "import { sealRequest } from '../protocol/hpke.js';"), []);
});

test('tests may cross the boundary to drive real processes', () => {
  assert.deepEqual(rules('parent/test/server.test.ts', "import { spawn } from 'node:child_process'; import { x } from '../../enclave/main.js';"), []);
});

test('enclave/, parent/ and client/ may not import emulators/, not even from their tests', () => {
  assert.equal(rules('enclave/main.ts', "import { x } from '../emulators/kms/kms.js';").length, 1, 'enclave/ importing the KMS emulator');
  assert.equal(rules('parent/main.ts', "const m = await import('../emulators/kms/server.js');").length, 1, 'parent/ importing the KMS emulator');
  assert.equal(rules('parent/test/main.test.ts', "import { x } from '../../emulators/kms/main.js';").length, 1, 'a parent test importing the KMS emulator');
  assert.equal(rules('client/flows.ts', "export { y } from '../emulators/kms/cms.js';").length, 1, 'client/ importing the KMS emulator');
});

test('emulators/ may not import enclave/ except from its tests', () => {
  assert.equal(rules('emulators/kms/kms.ts', "import { x } from '../../enclave/nsm/emulator.js';").length, 1, 'the KMS emulator importing enclave/');
  assert.deepEqual(rules('emulators/kms/test/kms.test.ts', "import { createEmulatorNsm } from '../../../enclave/nsm/emulator.js';"), [], 'its tests make documents with the NSM emulator');
  assert.deepEqual(rules('emulators/kms/recipient.ts', "import { verifyAttestation } from '../../client/attestation.js';"), [], 'the verifier of client/ is allowed');
});

test('store/ (untrusted) never imports enclave/ or client/, and enclave/ never imports store/, not even from tests', () => {
  assert.equal(rules('store/ip-pool.ts', "import { x } from '../enclave/core/service.js';").length, 1, 'store/ importing enclave/');
  assert.equal(rules('store/test/pool.test.ts', "import { x } from '../../enclave/core/keys.js';").length, 1, 'a store test importing enclave/');
  assert.equal(rules('store/backup.ts', "export { y } from '../client/backup.js';").length, 1, 'store/ importing client/');
  assert.equal(rules('enclave/main.ts', "const m = await import('../store/open.js');").length, 1, 'enclave/ importing store/');
  assert.equal(rules('enclave/test/main.test.ts', "import { x } from '../../store/open.js';").length, 1, 'an enclave test importing store/');
  assert.deepEqual(rules('store/ip-pool.ts', "import { isCanonicalIp } from '../protocol/ip.js'; import pg from 'pg';"), [], 'protocol/ and pg are allowed');
});

test('issuer/ (untrusted) never imports enclave/ or client/, not even from tests, and enclave/ never imports issuer/', () => {
  assert.equal(rules('issuer/domain.ts', "import { createSrtVerifier } from '../enclave/core/tokens.js';").length, 1, 'issuer/ importing enclave/');
  assert.equal(rules('issuer/test/server.test.ts', "import { x } from '../../enclave/core/keys.js';").length, 1, 'an issuer test importing enclave/');
  assert.equal(rules('issuer/server.ts', "export { y } from '../client/flows.js';").length, 1, 'issuer/ importing client/');
  assert.equal(rules('enclave/main.ts', "const m = await import('../issuer/domain.js');").length, 1, 'enclave/ importing issuer/');
  assert.deepEqual(rules('issuer/domain.ts', "import { createSrtVerifier } from '../protocol/srt.js'; import { openStore } from '../store/open.js';"), [], 'protocol/ and store/ are allowed');
});

test('service/ (untrusted) never imports enclave/, client/, issuer/, parent/ or emulators/, not even from tests, and enclave/ never imports service/', () => {
  assert.equal(rules('service/dip.ts', "import { x } from '../enclave/core/service.js';").length, 1, 'service/ importing enclave/');
  assert.equal(rules('service/test/assign.test.ts', "import { x } from '../../client/flows.js';").length, 1, 'a service test importing client/');
  assert.equal(rules('service/main.ts', "import { x } from '../issuer/token-keys.js';").length, 1, 'service/ importing issuer/');
  assert.equal(rules('service/parents.ts', "export { y } from '../parent/server.js';").length, 1, 'service/ importing parent/');
  assert.equal(rules('service/main.ts', "import { y } from '../emulators/kms/kms.js';").length, 1, 'service/ importing emulators/');
  assert.equal(rules('enclave/main.ts', "const m = await import('../service/dip.js');").length, 1, 'enclave/ importing service/');
  assert.deepEqual(
    rules('service/dip.ts', "import { verifyToken } from '../protocol/privacypass-issuance.js'; import { beginAssign } from '../store/token-nonce.js'; import { readBody } from '../common/http-body.js';"),
    [],
    'protocol/, store/ and common/ are allowed',
  );
});

test('the SRT rules live in protocol/ and use node:crypto only', () => {
  assert.equal(rules('protocol/srt.ts', "import { jwtVerify } from '../enclave/core/tokens.js';").length, 1, 'protocol/ importing enclave/');
  assert.equal(rules('protocol/srt.ts', "import { jwtVerify } from 'jose';").length, 1, 'protocol/ importing jose');
  assert.deepEqual(rules('protocol/srt.ts', "import { createPublicKey } from 'node:crypto';"), [], 'node:crypto is pure enough');
});

test('common/ (shared untrusted building blocks) depends on nothing else, and enclave/ and protocol/ never import it', () => {
  assert.equal(rules('common/options.ts', "import { x } from '../protocol/limits.js';").length, 1, 'common/ importing protocol/');
  assert.equal(rules('common/http-log.ts', "import { x } from '../parent/log.js';").length, 1, 'common/ importing parent/');
  assert.equal(rules('enclave/main.ts', "import { parseListen } from '../common/options.js';").length, 1, 'enclave/ importing common/');
  assert.equal(rules('protocol/frame.ts', "import { x } from '../common/options.js';").length, 1, 'protocol/ importing common/');
  assert.deepEqual(
    rules('issuer/config.ts', "import { readOptionTexts } from '../common/options.js';").concat(rules('parent/log.ts', "export { methodLabel } from '../common/http-log.js';")),
    [],
    'the untrusted services share it',
  );
});
