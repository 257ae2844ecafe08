/**
 * A small client of the Crypto Pay API: POST `<api url>/<method>` with a JSON body and the
 * `Crypto-Pay-API-Token` header. Every response is `{"ok": true, "result": ...}` or
 * `{"ok": false, "error": {...}}`.
 */
import { z } from "zod";
import { PaymentProviderError } from "../errors.ts";

/** The public API; the testnet's is `https://testnet-pay.crypt.bot/api`. */
export const CRYPTOPAY_API_URL = "https://pay.crypt.bot/api";
/** The largest page of `getInvoices`. */
export const CRYPTOPAY_INVOICES_PAGE = 1000;

/** The fields of a Crypto Pay `Invoice` that the node reads. */
export const CryptoPayInvoiceSchema = z.object({
  invoice_id: z.number().int(),
  status: z.string(),
  currency_type: z.string().optional(),
  asset: z.string().optional(),
  amount: z.string(),
  bot_invoice_url: z.string(),
  payload: z.string().optional(),
});
export type CryptoPayInvoice = z.infer<typeof CryptoPayInvoiceSchema>;

const ResponseSchema = z.union([
  z.object({ ok: z.literal(true), result: z.unknown() }),
  z.object({ ok: z.literal(false), error: z.unknown() }),
]);

const GetInvoicesResultSchema = z.object({ items: z.array(CryptoPayInvoiceSchema) });

export interface CryptoPayClientOptions {
  apiUrl: URL;
  apiToken: string;
  /** Time limit of one call. */
  timeoutMs?: number;
  /** The HTTP client; the global `fetch` unless given (tests serve the API in process). */
  fetch?: typeof fetch;
}

export interface CreateInvoiceParams {
  currency_type: "crypto";
  asset: string;
  amount: string;
  description: string;
  payload: string;
  expires_in: number;
  allow_comments: boolean;
}

export class CryptoPayClient {
  readonly #options: CryptoPayClientOptions;

  constructor(options: CryptoPayClientOptions) {
    this.#options = options;
  }

  async createInvoice(params: CreateInvoiceParams): Promise<CryptoPayInvoice> {
    return this.#parse(
      "createInvoice",
      CryptoPayInvoiceSchema,
      await this.#call("createInvoice", params),
    );
  }

  async getInvoices(params: {
    status: "paid";
    offset: number;
    count: number;
  }): Promise<CryptoPayInvoice[]> {
    const result = await this.#call("getInvoices", params);
    return this.#parse("getInvoices", GetInvoicesResultSchema, result).items;
  }

  async #call(method: string, params: object): Promise<unknown> {
    const base = this.#options.apiUrl.href.replace(/\/+$/, "");
    let response: Response;
    try {
      const send = this.#options.fetch ?? fetch;
      response = await send(`${base}/${method}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "crypto-pay-api-token": this.#options.apiToken,
        },
        body: JSON.stringify(params),
        signal: AbortSignal.timeout(this.#options.timeoutMs ?? 30_000),
      });
    } catch (error) {
      throw new PaymentProviderError("cryptopay", method, `request failed: ${error}`, error);
    }
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new PaymentProviderError(
        "cryptopay",
        method,
        `HTTP ${response.status} with a body that is not JSON: ${text.slice(0, 200)}`,
      );
    }
    const parsed = ResponseSchema.safeParse(body);
    if (!parsed.success) {
      throw new PaymentProviderError(
        "cryptopay",
        method,
        `HTTP ${response.status} with an unexpected answer: ${text.slice(0, 200)}`,
      );
    }
    if (!parsed.data.ok) {
      throw new PaymentProviderError(
        "cryptopay",
        method,
        `the API returned error ${JSON.stringify(parsed.data.error)}`,
      );
    }
    return parsed.data.result;
  }

  #parse<T>(method: string, schema: z.ZodType<T>, result: unknown): T {
    const parsed = schema.safeParse(result);
    if (!parsed.success) {
      throw new PaymentProviderError(
        "cryptopay",
        method,
        `unexpected result: ${z.prettifyError(parsed.error)}`,
      );
    }
    return parsed.data;
  }
}
