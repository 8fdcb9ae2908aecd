export { Streams, type StreamsOptions } from './streams.ts'
