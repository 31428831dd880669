export { tokenize, SearchSyntaxError, type Token, type TokenKind } from './tokenizer.ts';
export {
  parseFilter,
  parseOrderBy,
  parseOrderByList,
  isNumericAttribute,
  STRING_ATTRIBUTES,
  NUMERIC_ATTRIBUTES,
  type Comparator,
  type Comparison,
  type EntityType,
  type Identifier,
  type OrderByClause,
} from './parser.ts';
export {
  matchesFilter,
  matchesComparison,
  runComparator,
  valueOf,
  likeToRegExp,
} from './evaluate.ts';
