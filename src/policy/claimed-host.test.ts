import { describe, expect, it } from "vitest";
import { hasSignatureHeaders, parseClaimedHost, parseClaimedHosts } from "./claimed-host.ts";

function headers(values: Record<string, string>): Headers {
  return new Headers(values);
}

describe("parseClaimedHost", () => {
  it("reads keyId of a draft-cavage Signature", () => {
    const signature =
      'keyId="https://peer.example/ap/actors/instance#main-key",algorithm="rsa-sha256",' +
      'headers="(request-target) host date digest",signature="c2lnbmF0dXJl"';
    expect(parseClaimedHost(headers({ signature }))).toBe("peer.example");
  });

  it("keeps the port and lower-cases the host", () => {
    const signature = 'keyId="http://Peer.Example:3001/key",signature="x"';
    expect(parseClaimedHost(headers({ signature }))).toBe("peer.example:3001");
  });

  it("drops the default port of the scheme", () => {
    const signature = 'keyId="https://peer.example:443/key",signature="x"';
    expect(parseClaimedHost(headers({ signature }))).toBe("peer.example");
  });

  it("converts a Unicode host to punycode", () => {
    const signature = 'keyId="https://bücher.example/key",signature="x"';
    expect(parseClaimedHost(headers({ signature }))).toBe("xn--bcher-kva.example");
  });

  it("matches the keyId name in any case", () => {
    const signature = 'signature="x", KEYID="https://peer.example/key"';
    expect(parseClaimedHost(headers({ signature }))).toBe("peer.example");
  });

  it("reads keyid of an RFC 9421 Signature-Input", () => {
    const input =
      'sig1=("@method" "@target-uri" "@authority" "content-digest");' +
      'keyid="https://peer.example/ap/actors/instance#main-key";alg="rsa-v1_5-sha256";created=1767225600';
    const value = headers({ "signature-input": input, signature: "sig1=:c2lnbmF0dXJl:" });
    expect(parseClaimedHost(value)).toBe("peer.example");
  });

  it("returns every member of a Signature-Input", () => {
    const input =
      'sig1=("@method");keyid="https://one.example/k";created=1, ' +
      'sig2=("@method");created=2;keyid="https://two.example/k"';
    expect(parseClaimedHosts(headers({ "signature-input": input }))).toEqual([
      "one.example",
      "two.example",
    ]);
  });

  it("ignores keyid inside component names and parameters", () => {
    const input =
      'sig1=("x;keyid=\\"https://inner.example/k\\"" "@query-param";keyid="https://param.example/k");' +
      'keyid="https://outer.example/k";created=1';
    expect(parseClaimedHosts(headers({ "signature-input": input }))).toEqual(["outer.example"]);
  });

  it("combines both headers without duplicates", () => {
    const value = headers({
      "signature-input": 'sig1=("@method");keyid="https://a.example/k";created=1',
      signature: 'keyId="https://b.example/k",signature="x", keyId="https://a.example/other"',
    });
    expect(parseClaimedHosts(value)).toEqual(["a.example", "b.example"]);
  });

  it("keeps members parsed before a syntax error", () => {
    const input = 'sig1=("@method");keyid="https://a.example/k";created=1, sig2=(("broken';
    expect(parseClaimedHosts(headers({ "signature-input": input }))).toEqual(["a.example"]);
  });

  const malformed: [string, Record<string, string>][] = [
    ["no headers", {}],
    ["empty Signature", { signature: "" }],
    ["Signature without keyId", { signature: 'algorithm="rsa-sha256",signature="x"' }],
    ["keyId that is not a URL", { signature: 'keyId="main-key",signature="x"' }],
    ["keyId without a host", { signature: 'keyId="urn:uuid:1234",signature="x"' }],
    ["unterminated keyId", { signature: 'keyId="https://peer.example/key' }],
    ["Signature-Input that is not a dictionary", { "signature-input": "((((" }],
    ["Signature-Input with an unterminated string", { "signature-input": 'sig1=("@method' }],
    [
      "Signature-Input keyid that is a token",
      { "signature-input": "sig1=();keyid=peer;created=1" },
    ],
    ["Signature-Input with a bad escape", { "signature-input": 'sig1=();keyid="a\\b"' }],
    ["binary garbage", { signature: "\u0001\u0002=\u0003" }],
  ];
  for (const [name, values] of malformed) {
    it(`returns undefined for ${name}`, () => {
      expect(parseClaimedHost(headers(values))).toBeUndefined();
    });
  }
});

describe("hasSignatureHeaders", () => {
  it("detects either header", () => {
    expect(hasSignatureHeaders(headers({ signature: "x" }))).toBe(true);
    expect(hasSignatureHeaders(headers({ "signature-input": "x" }))).toBe(true);
    expect(hasSignatureHeaders(headers({ authorization: "Bearer x" }))).toBe(false);
  });
});
