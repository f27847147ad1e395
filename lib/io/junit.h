/* junit.h - JUnit XML reports for CI dashboards (`check --junit`, `verify --junit`): the
 * dialect GitLab's test reports, Jenkins' junit step and GitHub's test-report actions read:
 *
 *   <?xml version="1.0" encoding="UTF-8"?>
 *   <testsuites name="S" tests="N" failures="F" errors="0">
 *     <testsuite name="S" tests="N" failures="F" errors="0" skipped="0">
 *       <properties>
 *         <property name="baseline" value="old.h5"/>
 *       </properties>
 *       <testcase classname="C" name="T"/>
 *       <testcase classname="C" name="T">
 *         <failure type="K" message="one line">details</failure>
 *       </testcase>
 *     </testsuite>
 *   </testsuites>
 *
 * No timestamps and no durations: the same inputs give the same bytes. Written through
 * ab_outfile (a temporary renamed on success): a failed command leaves no report behind. */
#ifndef AB_IO_JUNIT_H
#define AB_IO_JUNIT_H

#include <stdint.h>
#include <stdio.h>

#include "core/ab.h"

struct ab_junit {
    struct ab_outfile out;
    int64_t tests, failures;           /* declared by ab_junit_begin */
    int64_t seen_tests, seen_failures; /* written so far (must reach the declared counts) */
    int in_properties;
};

/* Opens path (its temporary) and writes the header of one suite called suite holding tests
 * cases of which failures fail (the counts go first in the file; ab_junit_commit asserts they
 * were kept). AB_OK, or ab_outfile_open's error (nothing is left behind). */
int ab_junit_begin(struct ab_junit *j, const char *path, const char *suite, int64_t tests,
                   int64_t failures);

/* A property of the suite (an input file, a tolerance); only before the first case. */
void ab_junit_property(struct ab_junit *j, const char *name, const char *value);

/* One test case; failure_type NULL when it passed, else the failure's type, its one-line
 * message and its details (details may be NULL). */
void ab_junit_case(struct ab_junit *j, const char *classname, const char *name,
                   const char *failure_type, const char *message, const char *details);

/* Closes the document and renames it into place: ab_outfile_commit's result. Always releases
 * j. */
int ab_junit_commit(struct ab_junit *j);

/* Removes the temporary. Safe on a zeroed or released struct. */
void ab_junit_abort(struct ab_junit *j);

/* Writes s to f as XML character data: & < > " ' as the entities &amp; &lt; &gt; &quot;
 * &apos;; in an attribute value (attr 1) also tab, newline and carriage return as character
 * references (&#9; &#10; &#13;, which attribute-value normalisation would otherwise turn into
 * spaces), in text only the carriage return; every character XML 1.0 cannot hold at all
 * (the other C0 controls, U+FFFE, U+FFFF) and every byte that is not part of a well-formed
 * UTF-8 character as U+FFFD. s NULL writes nothing. */
void ab_xml_escape(FILE *f, const char *s, int attr);

#endif
