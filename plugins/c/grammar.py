"""The C grammar tree-sitter parses, the queries the checks run, and the name lists they use."""

from __future__ import annotations

import re
from operator import attrgetter

import tree_sitter as ts
import tree_sitter_c as tsc

LANG = ts.Language(tsc.language())
PARSER = ts.Parser(LANG)

Q_MAIN = ts.Query(LANG, """
(ERROR) @error
(MISSING) @missing
(function_definition body: (compound_statement)) @fn
(identifier) @id
(declaration declarator: (_) @decl)
(parameter_declaration declarator: (_) @param)
(call_expression function: (identifier) @callee)
(preproc_params (identifier) @param)
(type_definition declarator: (_) @tdef)
(enumerator name: (identifier) @enum)
(binary_expression operator: ["==" "!=" "<" ">" "<=" ">="]) @cmp
(return_statement [(identifier) (number_literal) (binary_expression) (string_literal) (unary_expression)
  (parenthesized_expression) (field_expression) (true) (false) (null) (pointer_expression)
  (subscript_expression) (char_literal) (cast_expression)]) @retval
""")  # a void function's ``return f(x);`` is legal when f is void (the kernel does it): not flagged
Q_FREE = ts.Query(LANG, """
(ERROR) @error
(function_definition body: (compound_statement)) @fn
(identifier) @id
(declaration declarator: (_) @decl)
(parameter_declaration declarator: (_) @param)
(preproc_params (identifier) @param)
(type_definition declarator: (_) @tdef)
(enumerator name: (identifier) @enum)
""")  # corpus statistics need names only

KNOWN = frozenset("""NULL true false bool main __func__ __FUNCTION__ __PRETTY_FUNCTION__ __LINE__ __FILE__
__VA_ARGS__ __COUNTER__ offsetof typeof __typeof__ __alignof__ _Alignof _Static_assert static_assert
errno stdin stdout stderr EOF asm __asm__ __attribute__ __volatile__ va_list va_start va_end va_arg
""".split())
C_KEYWORDS = frozenset(b"""auto break case char const continue default do double else enum extern float for goto
if inline int long register restrict return short signed sizeof static struct switch typedef union unsigned
void volatile while _Bool _Complex _Atomic _Noreturn _Thread_local""".split())
NORETURN = frozenset("BUG panic unreachable __builtin_unreachable do_exit kthread_exit abort exit "
                      "__builtin_trap make_task_dead machine_halt".split())
# assertion macros: clang is silent on a self-comparison inside their arguments
ASSERTS = frozenset(b"assert static_assert _Static_assert BUILD_BUG_ON BUILD_BUG_ON_MSG compiletime_assert".split())
UNUSED_ATTRS = (b"__maybe_unused", b"__always_unused", b"unused")
DIRECTIVES = frozenset("preproc_include preproc_def preproc_function_def preproc_call comment".split())
CONDITIONALS = frozenset("preproc_if preproc_ifdef preproc_else preproc_elif preproc_elifdef".split())
VOID = re.compile(rb"\bvoid\b")
# a blank line, then a line starting in column 0 that is not a `}`, a directive or a label
# (`error:` / `#if` after a blank line sit inside functions: cutting there split a function)
BOUNDARY = re.compile(r"\n\n(?=[^\s}#])(?![A-Za-z_]\w*[ \t]*:(?!:))")
PIECE_CHARS = 4096
MAX_START_DEPTH = 256  # query matches start at most this deep in the tree (see sem.analyze_piece)
START = attrgetter("start_byte")
