/**
 * The Pepeunit Backend token: the MQTT username with which the Pepeunit backend and DataPipe join
 * EMQX. EMQX's Redis ACL entry is keyed by the whole token text (`mqtt_acl:<token>`), so the tap's
 * token must be byte-identical to the backend's, not merely valid.
 */
import { SignJWT } from "jose";

/**
 * Signs `{"domain":<domain>,"type":"Backend"}` with HS256 and no `exp`, as the Pepeunit backend
 * (PyJWT, sorted header) and DataPipe (golang-jwt) do: header `{"alg":"HS256","typ":"JWT"}`,
 * claims in the order `domain`, `type`, compact JSON. The key is the UTF-8 bytes of
 * `PU_SECRET_KEY` as written (a base64 string that Pepeunit does not decode).
 */
export async function createBackendToken(domain: string, secretKey: string): Promise<string> {
  return await new SignJWT({ domain, type: "Backend" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(secretKey));
}
