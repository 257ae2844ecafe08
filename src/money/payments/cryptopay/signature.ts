/**
 * Crypto Pay webhook signatures: the `crypto-pay-api-signature` header is the hex HMAC-SHA-256 of
 * the raw request body, keyed with the SHA-256 digest of the app's API token.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** Returns the hex signature Crypto Pay sends with `body`. */
export function signCryptoPayBody(apiToken: string, body: Uint8Array): string {
  const key = createHash("sha256").update(apiToken).digest();
  return createHmac("sha256", key).update(body).digest("hex");
}

/**
 * Returns true when `signature` is the signature of the exact bytes of `body`. The comparison
 * takes the same time wherever the first differing byte is.
 */
export function verifyCryptoPaySignature(
  apiToken: string,
  body: Uint8Array,
  signature: string | undefined,
): boolean {
  if (signature === undefined || !/^[0-9a-fA-F]{64}$/.test(signature)) return false;
  const expected = Buffer.from(signCryptoPayBody(apiToken, body), "hex");
  return timingSafeEqual(expected, Buffer.from(signature, "hex"));
}
