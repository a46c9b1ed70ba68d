// sse.js reads Server-Sent Events from a streamed fetch() body. The
// console cannot use EventSource: it sends no Authorization header, and
// the token must never go into a URL.

// Parser turns chunks of text into events {id, event, data}; comments
// (heartbeats) are dropped.
export class Parser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.rest = '';
    this.reset();
  }

  reset() {
    this.id = undefined;
    this.event = '';
    this.data = [];
  }

  push(text) {
    const lines = (this.rest + text).split(/\r\n|\r|\n/);
    this.rest = lines.pop();
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === '') {
      if (this.data.length > 0 || this.event) {
        this.onEvent({id: this.id, event: this.event || 'message', data: this.data.join('\n')});
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id') this.id = value;
    else if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
  }
}

// read feeds a Response's body to onEvent until it ends or signal aborts.
export async function read(response, onEvent, signal) {
  const parser = new Parser(onEvent);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const stop = () => reader.cancel().catch(() => {});
  signal?.addEventListener('abort', stop, {once: true});
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      parser.push(value);
    }
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}
