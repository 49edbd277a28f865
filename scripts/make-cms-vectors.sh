#!/usr/bin/env bash
# Makes the CMS test vectors of enclave/test/cms.test.ts (SPEC §9, CiphertextForRecipient) with
# OpenSSL: envelopes as KMS sends them (RSAES-OAEP-SHA256/MGF1-SHA256, AES-256-CBC), as DER and
# as streamed BER (indefinite lengths, chunked content), plus envelopes the enclave must refuse.
# Every run makes new keys and ciphertexts; the committed output is what the tests rely on.
set -euo pipefail

out="${1:-$(dirname "$0")/../test/vectors/cms}"
mkdir -p "$out"
cd "$out"

# Throwaway keys: the recipient, and another key a ciphertext must not open with.
for who in recipient other; do
  openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$who-key.pem"
  openssl req -new -x509 -key "$who-key.pem" -subj "/CN=dip cms test $who" -days 36500 -out "$who-cert.pem"
done

# -keyid makes the rid a subjectKeyIdentifier, so KeyTransRecipientInfo is version 2 (RFC 5652 §6.2.1).
encrypt() { # in out outform [extra options...]
  local in=$1 to=$2; shift 2
  openssl cms -encrypt -binary -in "$in" -out "$to" "$@"
}
KMS=(-keyid -aes-256-cbc -recip recipient-cert.pem -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -keyopt rsa_mgf1_md:sha256)

for n in 0 1 16 32 100 5000; do
  if [ "$n" = 0 ]; then : >"content-$n.bin"; else openssl rand -out "content-$n.bin" "$n"; fi
  encrypt "content-$n.bin" "content-$n.der" -outform DER "${KMS[@]}"
  encrypt "content-$n.bin" "content-$n.ber" -stream -outform DER "${KMS[@]}"
done

# Envelopes of the 32-byte content the enclave refuses.
m=content-32.bin
encrypt $m refuse-oaep-sha1.der -outform DER -keyid -aes-256-cbc -recip recipient-cert.pem -keyopt rsa_padding_mode:oaep
encrypt $m refuse-oaep-mgf1-sha1.der -outform DER "${KMS[@]}" -keyopt rsa_mgf1_md:sha1
encrypt $m refuse-oaep-label.der -outform DER "${KMS[@]}" -keyopt rsa_oaep_label:0102
encrypt $m refuse-pkcs1v15.der -outform DER -keyid -aes-256-cbc -recip recipient-cert.pem
encrypt $m refuse-aes-128-cbc.der -outform DER -keyid -aes-128-cbc -recip recipient-cert.pem -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -keyopt rsa_mgf1_md:sha256
encrypt $m refuse-issuer-and-serial.der -outform DER -aes-256-cbc -recip recipient-cert.pem -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -keyopt rsa_mgf1_md:sha256
encrypt $m refuse-two-recipients.der -outform DER "${KMS[@]}" -recip other-cert.pem -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -keyopt rsa_mgf1_md:sha256
encrypt $m refuse-for-other-key.der -outform DER -keyid -aes-256-cbc -recip other-cert.pem -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -keyopt rsa_mgf1_md:sha256
