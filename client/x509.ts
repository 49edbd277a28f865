// A small strict DER reader for the X.509 v3 certificates of an attestation chain (RFC 5280,
// X.690), used by attestation.ts (SPEC §7 step 3). It extracts what the chain checks need:
// the signed bytes, names, validity, key, basicConstraints and keyUsage. Anything it does not
// understand fails closed with `CertificateParseError`.

/** A certificate that is not DER this reader accepts. The message never echoes input. */
export class CertificateParseError extends Error {
  override readonly name = 'CertificateParseError';
  constructor() {
    super('The certificate is malformed.');
  }
}

interface Tlv {
  tag: number;
  /** The whole encoding, header included. */
  raw: Uint8Array;
  contents: Uint8Array;
}

function fail(): never {
  throw new CertificateParseError();
}

/** Reads consecutive DER items from `bytes`. */
class DerReader {
  private offset = 0;
  constructor(private readonly bytes: Uint8Array) {}

  get done(): boolean {
    return this.offset === this.bytes.length;
  }

  peekTag(): number | undefined {
    return this.bytes[this.offset];
  }

  read(expectedTag?: number): Tlv {
    const start = this.offset;
    const tag = this.bytes[this.offset++] ?? fail();
    if ((tag & 0x1f) === 0x1f) fail(); // multi-byte tags never occur in a certificate
    if (expectedTag !== undefined && tag !== expectedTag) fail();
    const first = this.bytes[this.offset++] ?? fail();
    let length = first;
    if (first & 0x80) {
      const count = first & 0x7f;
      // X.690 §10.1: definite, minimal lengths only; certificates here stay far below 2^24.
      if (count === 0 || count > 3) fail();
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + (this.bytes[this.offset++] ?? fail());
      if (length < 0x80 || (count > 1 && length < 256 ** (count - 1))) fail();
    }
    const end = this.offset + length;
    if (end > this.bytes.length) fail();
    const contents = this.bytes.subarray(this.offset, end);
    this.offset = end;
    return { tag, raw: this.bytes.subarray(start, end), contents };
  }

  end(): void {
    if (!this.done) fail();
  }
}

const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  oid: 0x06,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  explicit0: 0xa0,
  implicit1: 0x81,
  implicit2: 0x82,
  explicit3: 0xa3,
} as const;

const OID = {
  ecdsaWithSha384: '2a8648ce3d040303',
  basicConstraints: '551d13',
  keyUsage: '551d0f',
} as const;

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** RFC 5280 §4.1.2.5: UTCTime YYMMDDHHMMSSZ (YY ≥ 50 → 19YY) or GeneralizedTime YYYYMMDDHHMMSSZ. */
function readTime(item: Tlv): number {
  const text = String.fromCharCode(...item.contents);
  const match =
    item.tag === TAG.utcTime
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
      : item.tag === TAG.generalizedTime
        ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
        : null;
  if (match === null) fail();
  const [, y, mo, d, h, mi, s] = match.map(Number) as [number, number, number, number, number, number, number];
  const year = item.tag === TAG.utcTime ? (y >= 50 ? 1900 + y : 2000 + y) : y;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) fail();
  return Date.UTC(year, mo - 1, d, h, mi, s);
}

function readBoolean(item: Tlv): boolean {
  // X.690 §11.1: DER TRUE is 0xff.
  if (item.contents.length !== 1 || (item.contents[0] !== 0 && item.contents[0] !== 0xff)) fail();
  return item.contents[0] === 0xff;
}

function readSmallUint(item: Tlv): number {
  const c = item.contents;
  if (c.length === 0 || c.length > 4 || (c[0]! & 0x80) !== 0 || (c.length > 1 && c[0] === 0 && (c[1]! & 0x80) === 0)) fail();
  return c.reduce((n, b) => n * 256 + b, 0);
}

export interface BasicConstraints {
  ca: boolean;
  /** null when absent: no limit. */
  pathLength: number | null;
}

function readBasicConstraints(value: Uint8Array): BasicConstraints {
  const outer = new DerReader(value);
  const seq = new DerReader(outer.read(TAG.sequence).contents);
  outer.end();
  let ca = false;
  let pathLength: number | null = null;
  if (seq.peekTag() === TAG.boolean) ca = readBoolean(seq.read());
  if (seq.peekTag() === TAG.integer) pathLength = readSmallUint(seq.read());
  seq.end();
  return { ca, pathLength };
}

/** RFC 5280 §4.2.1.3: the first byte of the bit string (bit 0 = 0x80, keyCertSign = 0x04). */
function readKeyUsage(value: Uint8Array): number {
  const outer = new DerReader(value);
  const bits = outer.read(TAG.bitString).contents;
  outer.end();
  if (bits.length < 2 || bits[0]! > 7) fail();
  return bits[1]!;
}

export const KEY_USAGE_DIGITAL_SIGNATURE = 0x80;
export const KEY_USAGE_KEY_CERT_SIGN = 0x04;

export interface Certificate {
  /** The DER of tbsCertificate: what the issuer signed. */
  tbs: Uint8Array;
  /** The DER signature (ECDSA-Sig-Value) from signatureValue. */
  signature: Uint8Array;
  /** True when both signature algorithm fields are ecdsa-with-SHA384 without parameters. */
  ecdsaSha384: boolean;
  issuer: Uint8Array;
  subject: Uint8Array;
  notBefore: number;
  notAfter: number;
  subjectPublicKeyInfo: Uint8Array;
  basicConstraints: BasicConstraints | null;
  keyUsage: number | null;
}

function isEcdsaSha384(algorithm: Tlv): boolean {
  const r = new DerReader(algorithm.contents);
  const id = r.read(TAG.oid);
  // RFC 5758 §3.2: the parameters field MUST be absent.
  return r.done && hex(id.contents) === OID.ecdsaWithSha384;
}

/** Parses an X.509 v3 certificate. Unknown critical extensions fail, as RFC 5280 §4.2 requires. */
export function parseCertificate(der: Uint8Array): Certificate {
  const top = new DerReader(der);
  const cert = new DerReader(top.read(TAG.sequence).contents);
  top.end();
  const tbsItem = cert.read(TAG.sequence);
  const outerAlgorithm = cert.read(TAG.sequence);
  const signatureBits = cert.read(TAG.bitString).contents;
  cert.end();
  if (signatureBits.length < 2 || signatureBits[0] !== 0) fail();

  const tbs = new DerReader(tbsItem.contents);
  const version = new DerReader(tbs.read(TAG.explicit0).contents);
  if (readSmallUint(version.read(TAG.integer)) !== 2) fail(); // v3 only: extensions carry the CA rules
  version.end();
  tbs.read(TAG.integer); // serialNumber
  const innerAlgorithm = tbs.read(TAG.sequence);
  const issuer = tbs.read(TAG.sequence).raw;
  const validity = new DerReader(tbs.read(TAG.sequence).contents);
  const notBefore = readTime(validity.read());
  const notAfter = readTime(validity.read());
  validity.end();
  const subject = tbs.read(TAG.sequence).raw;
  const subjectPublicKeyInfo = tbs.read(TAG.sequence).raw;
  if (tbs.peekTag() === TAG.implicit1) tbs.read();
  if (tbs.peekTag() === TAG.implicit2) tbs.read();

  let basicConstraints: BasicConstraints | null = null;
  let keyUsage: number | null = null;
  if (!tbs.done) {
    const wrapper = new DerReader(tbs.read(TAG.explicit3).contents);
    const extensions = new DerReader(wrapper.read(TAG.sequence).contents);
    wrapper.end();
    const seen = new Set<string>();
    while (!extensions.done) {
      const ext = new DerReader(extensions.read(TAG.sequence).contents);
      const id = hex(ext.read(TAG.oid).contents);
      const critical = ext.peekTag() === TAG.boolean ? readBoolean(ext.read()) : false;
      const value = ext.read(TAG.octetString).contents;
      ext.end();
      if (seen.has(id)) fail(); // RFC 5280 §4.2: at most one instance of an extension
      seen.add(id);
      if (id === OID.basicConstraints) basicConstraints = readBasicConstraints(value);
      else if (id === OID.keyUsage) keyUsage = readKeyUsage(value);
      else if (critical) fail();
    }
  }
  tbs.end();

  return {
    tbs: tbsItem.raw,
    signature: signatureBits.subarray(1),
    ecdsaSha384: isEcdsaSha384(innerAlgorithm) && hex(innerAlgorithm.raw) === hex(outerAlgorithm.raw),
    issuer,
    subject,
    notBefore,
    notAfter,
    subjectPublicKeyInfo,
    basicConstraints,
    keyUsage,
  };
}

/** The DER of the first CERTIFICATE block of a PEM text (RFC 7468 §5). */
export function pemToDer(pem: string): Uint8Array {
  const match = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(pem);
  if (match === null) throw new TypeError('not a PEM certificate');
  return new Uint8Array(Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64'));
}
