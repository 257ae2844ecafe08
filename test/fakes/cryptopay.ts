/**
 * A local fake of the Crypto Pay API (@CryptoBot), for payment tests. It follows the published
 * reference (https://help.crypt.bot/crypto-pay-api: "Authorization", "createInvoice",
 * "getInvoices", "Webhooks" and "Verifying webhook updates") for the calls the node makes, and
 * signs webhook updates as that reference describes: the hex HMAC-SHA-256 of the raw body, keyed
 * with the SHA-256 digest of the app token. The real service was never called while writing or
 * running it.
 */
import { createHash, createHmac } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** The longest `expires_in` the reference allows: 31 days in seconds. */
const MAX_EXPIRES_IN = 2_678_400;

export interface FakeCryptoPayInvoice {
  invoice_id: number;
  hash: string;
  currency_type: "crypto";
  asset: string;
  amount: string;
  bot_invoice_url: string;
  description: string;
  status: "active" | "paid" | "expired";
  created_at: string;
  allow_comments: boolean;
  allow_anonymous: boolean;
  expiration_date: string;
  paid_at?: string;
  payload?: string;
}

class ApiError extends Error {
  readonly status: number;
  readonly code: number;
  constructor(status: number, code: number, name: string) {
    super(name);
    this.status = status;
    this.code = code;
  }
}

export class FakeCryptoPay {
  readonly token: string;
  readonly invoices = new Map<number, FakeCryptoPayInvoice>();
  readonly calls: { method: string; params: Record<string, unknown> }[] = [];
  #server: Server | undefined;
  #nextInvoiceId = 1001;
  #nextUpdateId = 1;

  constructor(options: { token: string }) {
    this.token = options.token;
  }

  /** The API URL to configure, such as `http://127.0.0.1:40123/api`. */
  get apiUrl(): URL {
    const address = this.#server?.address() as AddressInfo;
    return new URL(`http://127.0.0.1:${address.port}/api`);
  }

  async start(): Promise<void> {
    this.#server = createServer((request, response) => {
      void this.#handle(request, response);
    });
    this.#server.listen(0, "127.0.0.1");
    await once(this.#server, "listening");
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }

  /** Marks an invoice paid, as when the payer completes it in the bot. */
  markPaid(invoiceId: number): FakeCryptoPayInvoice {
    const invoice = this.invoices.get(invoiceId);
    if (invoice === undefined) throw new Error(`no invoice ${invoiceId} in the fake`);
    invoice.status = "paid";
    invoice.paid_at = new Date().toISOString();
    return invoice;
  }

  /** The raw body of an `invoice_paid` webhook update for `invoice`. */
  webhookBody(invoice: FakeCryptoPayInvoice, updateType = "invoice_paid"): string {
    return JSON.stringify({
      update_id: this.#nextUpdateId++,
      update_type: updateType,
      request_date: new Date().toISOString(),
      payload: invoice,
    });
  }

  /** The `crypto-pay-api-signature` of `body`. */
  sign(body: string): string {
    const secret = createHash("sha256").update(this.token, "utf8").digest();
    return createHmac("sha256", secret).update(body, "utf8").digest("hex");
  }

  /** POSTs `body` to the webhook URL with its signature, or with `signature` when given. */
  async sendWebhook(url: URL, body: string, signature?: string | null): Promise<Response> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (signature !== null) headers["crypto-pay-api-signature"] = signature ?? this.sign(body);
    return await fetch(url, { method: "POST", headers, body });
  }

  /**
   * Serves one API request in the calling process, without a socket. Unit tests give it to the
   * client as its `fetch`, with any API URL such as `http://cryptopay.invalid/api`.
   */
  readonly fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    const reply = this.#respond(
      new URL(request.url),
      request.headers.get("crypto-pay-api-token"),
      await request.text(),
    );
    return new Response(JSON.stringify(reply.body), {
      status: reply.status,
      headers: { "content-type": "application/json" },
    });
  };

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const token = request.headers["crypto-pay-api-token"];
    const reply = this.#respond(
      new URL(request.url ?? "/", "http://x"),
      typeof token === "string" ? token : null,
      text,
    );
    response.writeHead(reply.status, { "content-type": "application/json" });
    response.end(JSON.stringify(reply.body));
  }

  #respond(url: URL, token: string | null, text: string): { status: number; body: unknown } {
    try {
      const match = /^\/api\/([A-Za-z]+)$/.exec(url.pathname);
      if (match === null) throw new ApiError(404, 404, "METHOD_NOT_FOUND");
      if (token !== this.token) throw new ApiError(401, 401, "UNAUTHORIZED");
      const params: Record<string, unknown> =
        text === "" ? Object.fromEntries(url.searchParams) : JSON.parse(text);
      const method = match[1] as string;
      this.calls.push({ method, params });
      return { status: 200, body: { ok: true, result: this.#call(method, params) } };
    } catch (error) {
      const apiError = error instanceof ApiError ? error : new ApiError(500, 500, "INTERNAL");
      return {
        status: apiError.status,
        body: { ok: false, error: { code: apiError.code, name: apiError.message } },
      };
    }
  }

  #call(method: string, params: Record<string, unknown>): unknown {
    switch (method) {
      case "getMe":
        return { app_id: 1, name: "Fake app", payment_processing_bot_username: "CryptoBot" };
      case "createInvoice":
        return this.#createInvoice(params);
      case "getInvoices": {
        const offset = Number(params.offset ?? 0);
        const count = Number(params.count ?? 100);
        if (count < 1 || count > 1000) throw new ApiError(400, 400, "COUNT_INVALID");
        const items = [...this.invoices.values()].filter(
          (invoice) => params.status === undefined || invoice.status === params.status,
        );
        return { items: items.slice(offset, offset + count) };
      }
      default:
        throw new ApiError(404, 404, "METHOD_NOT_FOUND");
    }
  }

  #createInvoice(params: Record<string, unknown>): FakeCryptoPayInvoice {
    const bad = (name: string) => new ApiError(400, 400, name);
    if ((params.currency_type ?? "crypto") !== "crypto") throw bad("CURRENCY_TYPE_UNSUPPORTED");
    if (typeof params.asset !== "string") throw bad("ASSET_REQUIRED");
    const amount = String(params.amount ?? "");
    if (!/^\d+(\.\d+)?$/.test(amount) || Number(amount) <= 0) throw bad("AMOUNT_INVALID");
    const description = String(params.description ?? "");
    if (description.length > 1024) throw bad("DESCRIPTION_TOO_LONG");
    const payload = params.payload as string | undefined;
    if (payload !== undefined && Buffer.byteLength(payload) > 4096) throw bad("PAYLOAD_TOO_LONG");
    const expiresIn = Number(params.expires_in ?? MAX_EXPIRES_IN);
    if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > MAX_EXPIRES_IN) {
      throw bad("EXPIRES_IN_INVALID");
    }

    const id = this.#nextInvoiceId++;
    const now = Date.now();
    const invoice: FakeCryptoPayInvoice = {
      invoice_id: id,
      hash: `IVfake${id}`,
      currency_type: "crypto",
      asset: params.asset,
      amount,
      // Never requested; the test only reads it back.
      bot_invoice_url: `https://t.me/CryptoBot?start=IVfake${id}`,
      description,
      status: "active",
      created_at: new Date(now).toISOString(),
      allow_comments: params.allow_comments !== false,
      allow_anonymous: params.allow_anonymous !== false,
      expiration_date: new Date(now + expiresIn * 1000).toISOString(),
      ...(payload === undefined ? {} : { payload }),
    };
    this.invoices.set(id, invoice);
    return invoice;
  }
}
