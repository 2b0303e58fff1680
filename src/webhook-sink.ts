/** Where daemon components report events (the webhook dispatcher; a no-op when none is set). */
export interface WebhookSink {
  emit(event: string, data?: Record<string, unknown>): void;
}

export const noWebhooks: WebhookSink = { emit: () => undefined };
