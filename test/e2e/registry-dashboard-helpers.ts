/** One metric family of Prometheus's text format (0.0.4). */
export interface MetricFamily {
  help: string;
  type: string;
  samples: { labels: Record<string, string>; value: number }[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/y;

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < text.length) {
    const m = LABEL.exec(text);
    if (m === null) throw new Error(`bad labels in ${JSON.stringify(line)}`);
    labels[m[1] as string] = (m[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  }
  return labels;
}

/**
 * A strict reader of the exposition: every sample must follow its family's HELP and TYPE lines,
 * families appear once, and values are numbers. Throws on anything else.
 */
export function parsePrometheus(text: string): Map<string, MetricFamily> {
  if (!text.endsWith('\n')) throw new Error('exposition does not end with a newline');
  const families = new Map<string, MetricFamily>();
  let current: string | undefined;
  for (const line of text.slice(0, -1).split('\n')) {
    const help = /^# HELP (\S+) (.+)$/.exec(line);
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (help !== null) {
      const name = help[1] as string;
      if (families.has(name)) throw new Error(`family ${name} appears twice`);
      families.set(name, { help: help[2] as string, type: '', samples: [] });
      current = name;
    } else if (type !== null) {
      const family = families.get(type[1] as string);
      if (family === undefined || current !== type[1] || family.type !== '')
        throw new Error(`TYPE without HELP: ${line}`);
      family.type = type[2] as string;
    } else {
      const sample = SAMPLE.exec(line);
      if (sample === null) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
      const family = current === undefined ? undefined : families.get(current);
      if (family === undefined || sample[1] !== current || family.type === '')
        throw new Error(`sample outside its family: ${line}`);
      const value = Number(sample[3]);
      if (!Number.isFinite(value)) throw new Error(`bad value: ${line}`);
      family.samples.push({ labels: parseLabels(sample[2] ?? '', line), value });
    }
  }
  return families;
}
