import { createHmac } from "node:crypto";
import { jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { createBackendToken } from "./backend-token.ts";

const SECRET = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY3OA==";

/** Builds the token as PyJWT does, by hand from its JSON text. */
function expectedToken(domain: string, secret: string): string {
  const header = Buffer.from('{"alg":"HS256","typ":"JWT"}').toString("base64url");
  const claims = Buffer.from(`{"domain":"${domain}","type":"Backend"}`).toString("base64url");
  const signature = createHmac("sha256", Buffer.from(secret, "utf8"))
    .update(`${header}.${claims}`)
    .digest("base64url");
  return `${header}.${claims}.${signature}`;
}

describe("createBackendToken", () => {
  it("matches the backend's token byte for byte", async () => {
    const token = await createBackendToken("unit.example.com", SECRET);
    expect(token).toBe(expectedToken("unit.example.com", SECRET));
  });

  it("signs with the key text, not its base64 decoding", async () => {
    const token = await createBackendToken("unit.example.com", SECRET);
    const verified = await jwtVerify(token, new TextEncoder().encode(SECRET));
    expect(verified.payload).toEqual({ domain: "unit.example.com", type: "Backend" });
    await expect(jwtVerify(token, Buffer.from(SECRET, "base64"))).rejects.toThrow();
  });
});
