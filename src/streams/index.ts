export { type ChannelInfo, ChannelState, type ChannelStats, type PeerPredicate } from './channel.ts'
export { ChannelConditions, Condition, When } from './conditions.ts'
export {
  Consumer,
  type ConsumerEvents,
  type ConsumerOptions,
  type ConsumerStats,
  type RetryPolicy,
} from './consumer.ts'
export { defineStream, type StreamDef, type StreamDefOptions } from './def.ts'
export { StreamAlreadyExistsError } from './errors.ts'
export { Producer, type ProducerEvents, type ProducerOptions, type ProducerStats } from './producer.ts'
export { Streams, type StreamsOptions, type StreamsStats } from './streams.ts'
