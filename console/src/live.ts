import { session } from './api';

/*
 * Live alarms: the webserver's stream of server-sent events
 * (GET /api/v4/stream/alarms), read with fetch so that the Bearer token goes
 * in a header (EventSource cannot send one). When the stream cannot be
 * opened or breaks, the console polls every few seconds instead and tries
 * the stream again later.
 */

export type LiveMode = 'stream' | 'polling' | 'off';

export function watchAlarms(onChange: (ids: string[]) => void, onMode: (m: LiveMode) => void): () => void {
  let stopped = false;
  let poll: number | undefined;
  let controller: AbortController | undefined;
  let connections = 0;

  const startPolling = () => {
    onMode('polling');
    if (poll === undefined) poll = window.setInterval(() => onChange([]), 5000);
  };
  const stopPolling = () => {
    if (poll !== undefined) clearInterval(poll);
    poll = undefined;
  };

  const connect = async () => {
    while (!stopped) {
      controller = new AbortController();
      try {
        const r = await fetch('/api/v4/stream/alarms', {
          headers: { authorization: `Bearer ${session.token}`, accept: 'text/event-stream' },
          signal: controller.signal,
        });
        if (!r.ok || !r.body) throw new Error(`stream: HTTP ${r.status}`);
        stopPolling();
        onMode('stream');
        // What changed between the last poll (or the last stream) and this one: read the page again
        // (not on the first connection: the page has just been read).
        if (connections++ > 0) onChange([]);
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end = buffer.indexOf('\n\n');
          while (end >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = block
              .split('\n')
              .filter((l) => l.startsWith('data:'))
              .map((l) => l.slice(5).trim())
              .join('');
            if (block.includes('event: alarms') && data) onChange((JSON.parse(data) as { ids: string[] }).ids);
            end = buffer.indexOf('\n\n');
          }
        }
      } catch {
        // Fall through to polling.
      }
      if (stopped) return;
      startPolling();
      await new Promise((r) => setTimeout(r, 10_000));
    }
  };
  void connect();
  return () => {
    stopped = true;
    controller?.abort();
    stopPolling();
    onMode('off');
  };
}
