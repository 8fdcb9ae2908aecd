export { type TicketDecision, TicketGate, type TicketStatus } from './gate.ts'
export { type JsonValue, JWT_TICKET_CLASS, Jwt, type JwtPolicy, JwtTicketBuilder } from './jwt.ts'
export {
  type AsymmetricAlgorithm,
  type HmacAlgorithm,
  type JwtAlgorithm,
  JwtSigningKey,
  JwtVerifyingKey,
} from './jwt-keys.ts'
export {
  Expiration,
  InvalidTicketError,
  Ticket,
  type TicketErrorCode,
  type TicketValidator,
  validateTicket,
  validateTickets,
  validatorList,
} from './ticket.ts'
