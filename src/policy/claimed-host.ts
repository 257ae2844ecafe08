/**
 * Reads the host that a request claims to come from out of its HTTP signature headers, before
 * anything is verified. The policy gate uses it to refuse or throttle a sender without fetching
 * its key. Nothing here proves the claim: a liar can name any host, which only lets it spend
 * that host's rate budget or get itself refused.
 */

/**
 * Returns every host named by a key id in the request's signature headers, in header order and
 * without duplicates: `keyId="…"` of a draft-cavage `Signature` header and `keyid="…"` of each
 * member of an RFC 9421 `Signature-Input` dictionary. Hosts are URL hosts (lower-case,
 * punycode, with the port unless it is the scheme's default). Unparsable headers and key ids
 * that are not URLs contribute nothing; the function never throws.
 *
 * Fedify 2.3 fetches the key of every `Signature-Input` member it verifies, so the gate must
 * check all of them, not only the first.
 */
export function parseClaimedHosts(headers: Headers): string[] {
  const keyIds: string[] = [];
  const signatureInput = headers.get("signature-input");
  if (signatureInput !== null) keyIds.push(...parseSignatureInputKeyIds(signatureInput));
  const signature = headers.get("signature");
  if (signature !== null) keyIds.push(...parseCavageKeyIds(signature));

  const hosts: string[] = [];
  for (const keyId of keyIds) {
    const host = hostOf(keyId);
    if (host !== undefined && !hosts.includes(host)) hosts.push(host);
  }
  return hosts;
}

/** Returns the first host that the request's signature headers claim, or `undefined`. */
export function parseClaimedHost(headers: Headers): string | undefined {
  return parseClaimedHosts(headers)[0];
}

/** True when the request carries either signature header, parsable or not. */
export function hasSignatureHeaders(headers: Headers): boolean {
  return headers.has("signature") || headers.has("signature-input");
}

function hostOf(keyId: string): string | undefined {
  let url: URL;
  try {
    url = new URL(keyId);
  } catch {
    return undefined;
  }
  return url.host === "" ? undefined : url.host;
}

/**
 * Collects `keyId` values of a draft-cavage `Signature` header: comma-separated
 * `name="value"` pairs. The parameter name is matched in any case, and every occurrence counts,
 * so the result covers whichever one a verifier picks.
 */
function parseCavageKeyIds(header: string): string[] {
  const keyIds: string[] = [];
  for (const match of header.matchAll(/(?:^|,)\s*keyid\s*=\s*"([^"]*)"/gi)) {
    if (match[1] !== undefined) keyIds.push(match[1]);
  }
  return keyIds;
}

/**
 * Collects the `keyid` parameter of each member of an RFC 9421 `Signature-Input` header, an
 * RFC 8941 dictionary such as `sig1=("@method" "@target-uri");keyid="https://a.example/k";created=1`.
 * The scanner skips quoted strings and inner lists, so a `keyid` inside a component name or a
 * component parameter is not mistaken for the member's. On a syntax error it returns what it
 * found before the error.
 */
function parseSignatureInputKeyIds(header: string): string[] {
  const scanner = new FieldScanner(header);
  const keyIds: string[] = [];
  try {
    scanner.skipSpaces();
    while (!scanner.atEnd()) {
      scanner.readKey();
      if (scanner.peek() === "=") {
        scanner.advance();
        if (scanner.peek() === "(") scanner.skipInnerList();
        else scanner.readBareItem();
      }
      for (const [name, value] of scanner.readParameters()) {
        if (name === "keyid" && typeof value === "string") keyIds.push(value);
      }
      scanner.skipSpaces();
      if (scanner.atEnd()) break;
      scanner.expect(",");
      scanner.skipSpaces();
    }
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
  }
  return keyIds;
}

/** A cursor over an RFC 8941 structured field value; every read throws `SyntaxError` on bad input. */
class FieldScanner {
  readonly #text: string;
  #position = 0;

  constructor(text: string) {
    this.#text = text;
  }

  atEnd(): boolean {
    return this.#position >= this.#text.length;
  }

  peek(): string {
    return this.#text.charAt(this.#position);
  }

  advance(): void {
    this.#position++;
  }

  expect(character: string): void {
    if (this.peek() !== character) {
      throw new SyntaxError(`expected ${character} at offset ${this.#position}`);
    }
    this.advance();
  }

  skipSpaces(): void {
    while (this.peek() === " " || this.peek() === "\t") this.advance();
  }

  readKey(): string {
    const match = /^[a-z*][a-z0-9_\-.*]*/.exec(this.#text.slice(this.#position));
    if (!match) throw new SyntaxError(`expected a key at offset ${this.#position}`);
    this.#position += match[0].length;
    return match[0];
  }

  /** Reads a bare item and returns it when it is a string; other item types return `null`. */
  readBareItem(): string | null {
    const first = this.peek();
    if (first === '"') return this.#readQuotedString();
    const match =
      /^(?:-?[0-9][0-9.]*|[A-Za-z*][A-Za-z0-9:/!#$%&'*+\-.^_`|~]*|:[A-Za-z0-9+/=]*:|\?[01])/.exec(
        this.#text.slice(this.#position),
      );
    if (!match) throw new SyntaxError(`expected an item at offset ${this.#position}`);
    this.#position += match[0].length;
    return null;
  }

  /** Reads `;name[=item]` pairs; a parameter without a value is boolean true. */
  readParameters(): [string, string | null | true][] {
    const parameters: [string, string | null | true][] = [];
    while (this.peek() === ";") {
      this.advance();
      this.skipSpaces();
      const name = this.readKey();
      if (this.peek() === "=") {
        this.advance();
        parameters.push([name, this.readBareItem()]);
      } else {
        parameters.push([name, true]);
      }
    }
    return parameters;
  }

  skipInnerList(): void {
    this.expect("(");
    this.skipSpaces();
    while (this.peek() !== ")") {
      if (this.atEnd()) throw new SyntaxError("unterminated inner list");
      this.readBareItem();
      this.readParameters();
      if (this.peek() !== " " && this.peek() !== ")") {
        throw new SyntaxError(`expected a space or ) at offset ${this.#position}`);
      }
      this.skipSpaces();
    }
    this.advance();
  }

  #readQuotedString(): string {
    this.expect('"');
    let value = "";
    for (;;) {
      if (this.atEnd()) throw new SyntaxError("unterminated string");
      const character = this.peek();
      this.advance();
      if (character === '"') return value;
      if (character === "\\") {
        const escaped = this.peek();
        if (escaped !== '"' && escaped !== "\\") {
          throw new SyntaxError(`invalid escape at offset ${this.#position}`);
        }
        this.advance();
        value += escaped;
      } else {
        value += character;
      }
    }
  }
}
