/** Builds the configured payment providers: Telegram Stars and Crypto Pay, each optional. */
import { Api } from "grammy";
import type { Config } from "../config.ts";
import type { DatabaseLike } from "../db/client.ts";
import {
  CryptoPayClient,
  CryptoPayProvider,
  parseDecimalPrice,
  TelegramStarsProvider,
} from "../money/payments/index.ts";

export interface PaymentProviders {
  /** Present when `PU_NODE_TELEGRAM_TOKEN` is set. */
  telegramStars: TelegramStarsProvider | undefined;
  /** Present when `PU_NODE_CRYPTOPAY_TOKEN` is set. */
  cryptoPay: CryptoPayProvider | undefined;
}

export function createPaymentProviders(config: Config, db: DatabaseLike): PaymentProviders {
  const settings = config.payments;
  const common = {
    db,
    maxTokens: BigInt(settings.maxTokensPerOrder),
    orderTtlSeconds: settings.orderTtlSeconds,
    nodeName: config.nodeName,
  };
  const telegramStars =
    settings.telegramToken === undefined
      ? undefined
      : new TelegramStarsProvider({
          ...common,
          api: new Api(settings.telegramToken, { apiRoot: trimSlash(settings.telegramApiRoot) }),
          starsPerToken: BigInt(settings.tokenPriceStars),
        });
  const cryptoPay =
    settings.cryptoPayToken === undefined
      ? undefined
      : new CryptoPayProvider({
          ...common,
          client: new CryptoPayClient({
            apiUrl: settings.cryptoPayApiUrl,
            apiToken: settings.cryptoPayToken,
          }),
          apiToken: settings.cryptoPayToken,
          tokenPrice: parseDecimalPrice(settings.tokenPriceCryptoPay, settings.cryptoPayAsset),
        });
  return { telegramStars, cryptoPay };
}

/** grammY appends `/bot<token>/<method>` to the API root, so it must not end with a slash. */
export function trimSlash(url: URL): string {
  return url.href.replace(/\/+$/, "");
}
