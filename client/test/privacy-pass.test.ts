import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodePaddedBase64url, encodePaddedBase64url, formatWwwAuthenticate, parseAuthorization } from '../../protocol/privacypass-http.js';
import { verifyToken } from '../../protocol/privacypass-issuance.js';
import { TOKEN_LENGTH, Token, TokenChallenge, TokenRequest, tokenKeyId } from '../../protocol/privacypass.js';
import { ClientError } from '../errors.js';
import {
  DEFAULT_MAX_DELAY_MS, DEFAULT_MIN_DELAY_MS, checkChallenge, checkChallenges, getToken, parseTokenKeys, pinnedChallenge, redemptionDelayMs, seededRandom, verifySavedToken,
} from '../privacy-pass.js';
import { ISSUER_KEY, ISSUER_NAME, ISSUER_URL, ORIGIN_INFO, OTHER_KEY, SRT, THIRD_KEY, fakeIssuer, tokenKeysJson } from './fake-issuer.js';

const config = parseTokenKeys(tokenKeysJson());

function challengeHeader(fields: { issuerName?: string; originInfo?: string; redemptionContext?: Uint8Array; tokenKey?: Uint8Array } = {}): string {
  return formatWwwAuthenticate({
    challenge: new TokenChallenge({
      issuerName: fields.issuerName ?? ISSUER_NAME,
      redemptionContext: fields.redemptionContext ?? new Uint8Array(0),
      originInfo: fields.originInfo ?? ORIGIN_INFO,
    }),
    tokenKey: fields.tokenKey ?? ISSUER_KEY.spki,
  });
}

async function refusedWith(promise: Promise<unknown>, code: string, detail?: string): Promise<ClientError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ClientError, `a ClientError, not ${String(error)}`);
    assert.equal(error.code, code, 'the error code');
    if (detail !== undefined) assert.equal(error.detail, detail, 'the error detail');
    return error;
  }
  assert.fail(`expected ${code}`);
}

describe('token-keys.json (SPEC §8) is parsed strictly', () => {
  it('accepts the SPEC §8 shape with one or two keys and keeps their token_key_id', () => {
    assert.equal(config.issuerName, ISSUER_NAME, 'issuer_name');
    assert.equal(config.originInfo, ORIGIN_INFO, 'origin_info');
    assert.deepEqual(config.tokenKeys[0]!.tokenKeyId, tokenKeyId(ISSUER_KEY.spki), 'token_key_id from the protocol SPKI helper');
    const two = parseTokenKeys(tokenKeysJson({ keys: [{ tokenType: 2, tokenKey: ISSUER_KEY.spki, notBefore: 1 }, { tokenType: 2, tokenKey: OTHER_KEY.spki }] }));
    assert.equal(two.tokenKeys.length, 2, 'two pinned keys (the SPEC §10 maximum) are accepted');
    assert.equal(two.tokenKeys[0]!.notBefore, 1, 'not-before is kept');
  });

  it('refuses a third key, since at most two keys are active', () => {
    const keys = [ISSUER_KEY, OTHER_KEY, THIRD_KEY].map((key) => ({ tokenType: 2, tokenKey: key.spki }));
    assert.throws(() => parseTokenKeys(tokenKeysJson({ keys })), (e: unknown) => e instanceof ClientError && e.code === 'token_keys_invalid', 'three distinct keys refused');
  });

  const base = JSON.parse(tokenKeysJson()) as Record<string, unknown>;
  const entry = (base['token-keys'] as Record<string, unknown>[])[0]!;
  const unpadded = (entry['token-key'] as string).replace(/=+$/, '');
  const cases: [string, unknown][] = [
    ['not JSON', undefined],
    ['an unknown top-level field', { ...base, extra: 1 }],
    ['no origin_info', { issuer_name: ISSUER_NAME, 'token-keys': base['token-keys'] }],
    ['an empty issuer_name', { ...base, issuer_name: '' }],
    ['an issuer_name with a space', { ...base, issuer_name: 'issuer example' }],
    ['an empty origin_info', { ...base, origin_info: '' }],
    ['no keys', { ...base, 'token-keys': [] }],
    ['an unknown entry field', { ...base, 'token-keys': [{ ...entry, extra: true }] }],
    ['token type 1', { ...base, 'token-keys': [{ ...entry, 'token-type': 1 }] }],
    ['a negative not-before', { ...base, 'token-keys': [{ ...entry, 'not-before': -1 }] }],
    ['a key that is not an SPKI', { ...base, 'token-keys': [{ ...entry, 'token-key': 'AAAA' }] }],
    ['a key in standard base64', { ...base, 'token-keys': [{ ...entry, 'token-key': Buffer.from(ISSUER_KEY.spki).toString('base64') + '!' }] }],
    ['the same key twice', { ...base, 'token-keys': [entry, entry] }],
  ];
  if (unpadded !== entry['token-key']) cases.push(['a key without its padding', { ...base, 'token-keys': [{ ...entry, 'token-key': unpadded }] }]);
  for (const [name, value] of cases) {
    it(`refuses ${name}`, () => {
      const text = value === undefined ? '{not json' : JSON.stringify(value);
      assert.throws(() => parseTokenKeys(text), (e: unknown) => e instanceof ClientError && e.code === 'token_keys_invalid', name);
    });
  }
});

describe('the challenge (SPEC §10) is the pinned one or refused', () => {
  it('builds token type 2, the pinned issuer, an empty redemption context and the pinned origin', () => {
    const challenge = pinnedChallenge(config);
    assert.equal(challenge.tokenType, 2, 'token type');
    assert.equal(challenge.issuerName, ISSUER_NAME, 'issuer_name');
    assert.equal(challenge.redemptionContext.length, 0, 'empty redemption context');
    assert.equal(challenge.originInfo, ORIGIN_INFO, 'origin_info');
  });

  it('accepts the DIP service challenge that equals the pinned one, with its padded base64url', () => {
    const header = challengeHeader();
    assert.match(header, /challenge="[A-Za-z0-9_-]+={1,2}"/, 'this challenge needs padding, and has it');
    assert.deepEqual(checkChallenge(header, config).spki, ISSUER_KEY.spki, 'the pinned key it names');
  });

  it('refuses a challenge whose padding was stripped', () => {
    const stripped = challengeHeader().replace(/(challenge="[A-Za-z0-9_-]+)=+"/, '$1"');
    assert.throws(() => checkChallenge(stripped, config), (e: unknown) => e instanceof ClientError && e.code === 'challenge_unexpected' && e.detail === 'malformed', 'unpadded base64url refused');
  });

  const differing: [string, Parameters<typeof challengeHeader>[0], string][] = [
    ['another key', { tokenKey: OTHER_KEY.spki }, 'token_key'],
    ['another issuer', { issuerName: 'evil.example' }, 'issuer_name'],
    ['another origin', { originInfo: 'other.example' }, 'origin_info'],
    ['a non-empty redemption context', { redemptionContext: new Uint8Array(32).fill(7) }, 'redemption_context'],
  ];
  for (const [name, fields, detail] of differing) {
    it(`refuses a challenge with ${name} before anything is sent`, async () => {
      assert.throws(() => checkChallenge(challengeHeader(fields), config), (e: unknown) => e instanceof ClientError && e.code === 'challenge_unexpected' && e.detail === detail, name);
      const issuer = fakeIssuer();
      await refusedWith(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, challenge: challengeHeader(fields), fetch: issuer.fetch }), 'challenge_unexpected', detail);
      assert.equal(issuer.calls.length, 0, 'no request reached the issuer');
    });
  }
});

describe('a WWW-Authenticate listing several challenges (one per key) is checked whole', () => {
  const two = parseTokenKeys(tokenKeysJson({ keys: [{ tokenType: 2, tokenKey: ISSUER_KEY.spki }, { tokenType: 2, tokenKey: OTHER_KEY.spki }] }));

  it('returns each pinned key once, in the order offered', () => {
    const header = `${challengeHeader({ tokenKey: OTHER_KEY.spki })}, ${challengeHeader()}, ${challengeHeader()}`;
    assert.deepEqual(checkChallenges(header, two).map((key) => key.spki), [OTHER_KEY.spki, ISSUER_KEY.spki], 'no key twice');
    assert.deepEqual(checkChallenges(challengeHeader(), two).map((key) => key.spki), [ISSUER_KEY.spki], 'one challenge');
  });

  const tainted: [string, string, string][] = [
    ['an unpinned key beside a pinned one', `${challengeHeader()}, ${challengeHeader({ tokenKey: THIRD_KEY.spki })}`, 'token_key'],
    ['another origin beside the pinned challenge', `${challengeHeader()}, ${challengeHeader({ tokenKey: OTHER_KEY.spki, originInfo: 'elsewhere.example' })}`, 'origin_info'],
    ['a redemption context beside the pinned challenge', `${challengeHeader()}, ${challengeHeader({ redemptionContext: new Uint8Array(32) })}`, 'redemption_context'],
    ['a malformed second challenge', `${challengeHeader()}, PrivateToken challenge="AAAA"`, 'malformed'],
    ['no PrivateToken challenge', 'Basic realm="dip"', 'malformed'],
  ];
  for (const [name, header, detail] of tainted) {
    it(`refuses ${name} (${detail})`, () => {
      assert.throws(() => checkChallenges(header, two), (e: unknown) => e instanceof ClientError && e.code === 'challenge_unexpected' && e.detail === detail, name);
    });
  }
});

describe('getToken (RFC 9578 §5–6 against the pinned issuer)', () => {
  it('fetches the directory, sends one TokenRequest with the SRT, and returns a token valid under the pinned key', async () => {
    const issuer = fakeIssuer();
    const issued = await getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, challenge: challengeHeader(), fetch: issuer.fetch });
    assert.deepEqual(issuer.calls.map((c) => `${c.method} ${c.path}`), ['GET /.well-known/private-token-issuer-directory', 'POST /token-request'], 'directory, then one request');
    const post = issuer.calls[1]!;
    assert.equal(post.headers.get('content-type'), 'application/private-token-request', 'the request media type');
    assert.equal(post.headers.get('authorization'), `Bearer ${SRT}`, 'the SRT as a bearer token');
    assert.equal(issuer.calls[0]!.headers.get('authorization'), null, 'the directory fetch carries no identity');
    assert.equal(TokenRequest.decode(post.body).truncatedTokenKeyId, tokenKeyId(ISSUER_KEY.spki)[31], 'truncated_token_key_id of the pinned key');
    assert.equal(issued.bytes.length, TOKEN_LENGTH, 'a whole Token');
    assert.doesNotThrow(() => verifyToken(Token.decode(issued.bytes), ISSUER_KEY, pinnedChallenge(config)), 'the token verifies as the DIP service would');
    assert.deepEqual(verifySavedToken(issued.encoded, config).pinned.spki, ISSUER_KEY.spki, 'verifySavedToken accepts it');
  });

  it('encodes the Authorization header in base64url WITH padding (RFC 9577 §2.2)', async () => {
    const issued = await getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, fetch: fakeIssuer().fetch });
    assert.equal(issued.encoded, encodePaddedBase64url(issued.bytes), 'the padded base64url of the bytes');
    assert.equal(issued.encoded.length % 4, 0, 'a whole number of base64 quanta');
    assert.match(issued.encoded, /^[A-Za-z0-9_-]+={0,2}$/, 'the URL-safe alphabet');
    assert.equal(issued.authorization, `PrivateToken token="${issued.encoded}"`, 'the RFC 9577 credential');
    assert.deepEqual(parseAuthorization(issued.authorization).encode(), issued.bytes, 'the header parses back to the token');
    assert.deepEqual(decodePaddedBase64url(issued.encoded), issued.bytes, 'the canonical padded decoder reads it');
  });

  it('refuses a directory that offers a key not pinned, even beside the pinned one, before sending the SRT', async () => {
    const issuer = fakeIssuer({ keys: [{ tokenType: 2, tokenKey: ISSUER_KEY.spki }, { tokenType: 2, tokenKey: OTHER_KEY.spki }] });
    await refusedWith(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, fetch: issuer.fetch }), 'issuer_key_unpinned');
    assert.equal(issuer.calls.filter((c) => c.method === 'POST').length, 0, 'no TokenRequest was sent');
    const only = fakeIssuer({ keys: [{ tokenType: 2, tokenKey: OTHER_KEY.spki }] });
    await refusedWith(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, fetch: only.fetch }), 'issuer_key_unpinned');
    assert.equal(only.calls.filter((c) => c.method === 'POST').length, 0, 'no TokenRequest was sent');
  });

  it('refuses a directory that sends the SRT to another origin', async () => {
    const issuer = fakeIssuer({ requestUri: 'https://collector.example/token-request' });
    await refusedWith(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, fetch: issuer.fetch }), 'issuer_directory_invalid');
    assert.equal(issuer.calls.filter((c) => c.method === 'POST').length, 0, 'no TokenRequest was sent');
    const broken = fakeIssuer({ requestUri: 'http://[' });
    await refusedWith(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, fetch: broken.fetch }), 'issuer_directory_invalid');
    assert.equal(broken.calls.filter((c) => c.method === 'POST').length, 0, 'no TokenRequest was sent to an unparseable URI');
  });

  it('uses the newest pinned key already in force', async () => {
    const two = parseTokenKeys(tokenKeysJson({ keys: [{ tokenType: 2, tokenKey: ISSUER_KEY.spki, notBefore: 1000 }, { tokenType: 2, tokenKey: OTHER_KEY.spki, notBefore: 2000 }] }));
    const issuer = fakeIssuer({ keys: [{ tokenType: 2, tokenKey: ISSUER_KEY.spki }, { tokenType: 2, tokenKey: OTHER_KEY.spki }] });
    // At 1999 the other key is not in force yet; at exactly 2000 it is (and this issuer cannot sign with it).
    const issued = await getToken({ issuerUrl: ISSUER_URL, srt: SRT, config: two, fetch: issuer.fetch, nowSeconds: 1999 });
    assert.deepEqual(issued.tokenKeyId, tokenKeyId(ISSUER_KEY.spki), 'the key in force');
    const later = fakeIssuer({ keys: [{ tokenType: 2, tokenKey: ISSUER_KEY.spki }, { tokenType: 2, tokenKey: OTHER_KEY.spki }] });
    await assert.rejects(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config: two, fetch: later.fetch, nowSeconds: 2000 }), ClientError, 'this issuer cannot sign under the newer key');
    const post = later.calls.find((c) => c.method === 'POST');
    assert.ok(post, 'a TokenRequest was sent at not-before');
    assert.equal(TokenRequest.decode(post.body).truncatedTokenKeyId, tokenKeyId(OTHER_KEY.spki)[31], 'at exactly not-before the newer key is used');
  });

  it('refuses a challenge whose pinned key the issuer does not offer, before sending the SRT', async () => {
    const two = parseTokenKeys(tokenKeysJson({ keys: [{ tokenType: 2, tokenKey: ISSUER_KEY.spki }, { tokenType: 2, tokenKey: OTHER_KEY.spki }] }));
    const issuer = fakeIssuer();
    await refusedWith(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config: two, challenge: challengeHeader({ tokenKey: OTHER_KEY.spki }), fetch: issuer.fetch }), 'issuer_key_unpinned', 'not_offered');
    assert.equal(issuer.calls.filter((c) => c.method === 'POST').length, 0, 'no TokenRequest was sent');
  });

  it('with a challenge per key (two pinned keys), makes the token for a key both the service and the issuer offer', async () => {
    const two = parseTokenKeys(tokenKeysJson({ keys: [{ tokenType: 2, tokenKey: OTHER_KEY.spki }, { tokenType: 2, tokenKey: ISSUER_KEY.spki }] }));
    const both = `${challengeHeader({ tokenKey: OTHER_KEY.spki })}, ${challengeHeader()}`;
    assert.deepEqual(checkChallenges(both, two).map((key) => key.spki), [OTHER_KEY.spki, ISSUER_KEY.spki], 'both challenges, both pinned keys');
    const issuer = fakeIssuer();
    const issued = await getToken({ issuerUrl: ISSUER_URL, srt: SRT, config: two, challenge: both, fetch: issuer.fetch });
    assert.deepEqual(issued.tokenKeyId, tokenKeyId(ISSUER_KEY.spki), 'the key this issuer signs with');
  });

  it('refuses a directory that is not JSON, has no type-2 key, or is not served', async () => {
    const answer = (status: number, body: string): typeof fetch => async () => new Response(body, { status });
    await refusedWith(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, fetch: answer(200, '{') }), 'issuer_directory_invalid');
    const onlyType1 = JSON.stringify({ 'issuer-request-uri': '/token-request', 'token-keys': [{ 'token-type': 1, 'token-key': 'AAAA' }] });
    await refusedWith(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, fetch: answer(200, onlyType1) }), 'issuer_directory_invalid');
    await refusedWith(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, fetch: answer(503, 'down') }), 'http_failed');
  });

  it('treats a bad issuer URL or SRT as our own misuse', async () => {
    await assert.rejects(getToken({ issuerUrl: 'not a url', srt: SRT, config }), TypeError, 'not a URL');
    await assert.rejects(getToken({ issuerUrl: 'ftp://issuer.example', srt: SRT, config }), TypeError, 'not http(s)');
    await assert.rejects(getToken({ issuerUrl: ISSUER_URL, srt: 'two words', config }), TypeError, 'an SRT with a space');
  });

  it('refuses a TokenResponse that does not finalize into a valid token', async () => {
    const flipped = fakeIssuer({ response: (sig) => { const copy = new Uint8Array(sig); copy[100]! ^= 1; return copy; } });
    await refusedWith(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, fetch: flipped.fetch }), 'token_response_invalid');
    const short = fakeIssuer({ response: (sig) => sig.subarray(1) });
    await refusedWith(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, fetch: short.fetch }), 'token_response_invalid');
  });

  it('refuses an answer that is not application/private-token-response', async () => {
    await refusedWith(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, fetch: fakeIssuer({ contentType: 'application/json' }).fetch }), 'http_failed');
  });

  for (const [status, code] of [[403, 'srt_invalid'], [403, 'srt_expired'], [403, 'not_entitled'], [409, 'already_issued'], [400, 'bad_request']] as const) {
    it(`surfaces the issuer's ${code} (${status}) with its SPEC code`, async () => {
      const error = await refusedWith(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, fetch: fakeIssuer({ refuse: { status, code } }).fetch }), code);
      assert.equal(error.fromServer, true, 'marked as the server\'s refusal');
    });
  }

  it('turns a code outside the SPEC into http_failed', async () => {
    const error = await refusedWith(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, fetch: fakeIssuer({ refuse: { status: 403, code: 'made_up' } }).fetch }), 'http_failed');
    assert.equal(error.fromServer, false, 'not a SPEC code');
  });

  it('names an unreachable issuer as a network failure', async () => {
    const refused: typeof fetch = async () => { throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }); };
    await refusedWith(getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, fetch: refused }), 'http_failed', 'connection_refused');
  });
});

describe('verifySavedToken', () => {
  it('refuses a malformed token, a token under an unpinned key and a token for another challenge', async () => {
    const issued = await getToken({ issuerUrl: ISSUER_URL, srt: SRT, config, fetch: fakeIssuer().fetch });
    assert.throws(() => verifySavedToken(issued.encoded.slice(4), config), (e: unknown) => e instanceof ClientError && e.code === 'token_invalid' && e.detail === 'malformed', 'malformed');
    const other = parseTokenKeys(tokenKeysJson({ keys: [{ tokenType: 2, tokenKey: OTHER_KEY.spki }] }));
    assert.throws(() => verifySavedToken(issued.encoded, other), (e: unknown) => e instanceof ClientError && e.code === 'token_invalid' && e.detail === 'token_key', 'unpinned key');
    const elsewhere = new TokenChallenge({ issuerName: ISSUER_NAME, redemptionContext: new Uint8Array(0), originInfo: 'other.example' });
    assert.throws(() => verifySavedToken(issued.encoded, config, elsewhere), (e: unknown) => e instanceof ClientError && e.code === 'token_invalid' && e.detail === 'signature', 'another challenge');
  });
});

describe('redemptionDelayMs (SPEC §10: uniform in 1–24 h, 0 in development)', () => {
  it('is 0 in development', () => {
    assert.equal(redemptionDelayMs({ development: true }), 0, 'no delay in development');
  });

  it('reaches exactly 1 h and exactly 24 h at the ends of the draw', () => {
    assert.equal(DEFAULT_MIN_DELAY_MS, 3_600_000, '1 h');
    assert.equal(DEFAULT_MAX_DELAY_MS, 86_400_000, '24 h');
    assert.equal(redemptionDelayMs({ random: () => 0 }), 3_600_000, 'the lowest draw is 1 h');
    assert.equal(redemptionDelayMs({ random: (bound) => bound - 1 }), 86_400_000, 'the highest draw is 24 h');
  });

  it('stays within 1–24 h for seeded draws, and the same seed gives the same delays', () => {
    const random = seededRandom('delay');
    const delays = Array.from({ length: 1000 }, () => redemptionDelayMs({ random }));
    assert.ok(delays.every((d) => d >= 3_600_000 && d <= 86_400_000), 'every delay within bounds');
    assert.ok(new Set(delays).size > 990, 'the draws spread');
    const again = seededRandom('delay');
    assert.deepEqual(Array.from({ length: 1000 }, () => redemptionDelayMs({ random: again })), delays, 'seeded: reproducible');
  });

  it('stays within bounds with the default random source', () => {
    for (let i = 0; i < 100; i++) {
      const d = redemptionDelayMs();
      assert.ok(d >= 3_600_000 && d <= 86_400_000, 'within 1–24 h');
    }
  });

  it('honours configured bounds and refuses inverted ones or a bad random source', () => {
    assert.equal(redemptionDelayMs({ minMs: 5, maxMs: 5, random: seededRandom('x') }), 5, 'min = max');
    assert.throws(() => redemptionDelayMs({ minMs: 6, maxMs: 5 }), TypeError, 'min > max');
    assert.throws(() => redemptionDelayMs({ random: (bound) => bound }), TypeError, 'a draw at the bound');
    assert.throws(() => seededRandom('x')(0), TypeError, 'bound 0');
  });
});
