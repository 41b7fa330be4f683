// The little the engine needs of a logger; pino's Logger has it, and tests can pass a silent one.
export interface WalLogger {
  info: (fields: object, message: string) => void
  warn: (fields: object, message: string) => void
  error: (fields: object, message: string) => void
}

export const silentLogger: WalLogger = {
  info () {},
  warn () {},
  error () {}
}
