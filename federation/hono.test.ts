import { describe, expect, it } from "vitest";
import { withOrigin } from "./hono.ts";

describe("withOrigin", () => {
  it("readdresses a request to the public origin", async () => {
    const request = new Request("http://127.0.0.1:8080/ap/inbox?x=1", {
      method: "POST",
      headers: { "content-type": "application/activity+json", signature: "keyId=..." },
      body: '{"type":"Create"}',
    });
    const rewritten = withOrigin(request, new URL("https://node.example.com"));
    expect(rewritten.url).toBe("https://node.example.com/ap/inbox?x=1");
    expect(rewritten.method).toBe("POST");
    expect(rewritten.headers.get("signature")).toBe("keyId=...");
    expect(await rewritten.text()).toBe('{"type":"Create"}');
  });

  it("keeps a request already on the origin", () => {
    const request = new Request("https://node.example.com/ap/actors/instance");
    expect(withOrigin(request, new URL("https://node.example.com"))).toBe(request);
  });
});
