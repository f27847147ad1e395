/* junit.c - JUnit XML reports (junit.h): the suite's header with its counts, properties, one
 * element per case, XML escaping of every string. */
#include "io/junit.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "io/utf8.h"

void ab_xml_escape(FILE *f, const char *s, int attr)
{
    if (!s) return;
    while (*s) {
        uint32_t cp;
        int n = ab_utf8_char(s, &cp);
        if (n == 0) { /* not UTF-8: one byte becomes U+FFFD */
            fputs("\xEF\xBF\xBD", f);
            s++;
            continue;
        }
        switch (cp) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        case '\r': fputs("&#13;", f); break;
        case '\t':
        case '\n':
            if (attr) fprintf(f, "&#%u;", (unsigned)cp);
            else fputc((int)cp, f);
            break;
        default:
            if (cp < 0x20 || cp == 0xFFFE || cp == 0xFFFF) fputs("\xEF\xBF\xBD", f);
            else fwrite(s, 1, (size_t)n, f);
        }
        s += n;
    }
}

int ab_junit_begin(struct ab_junit *j, const char *path, const char *suite, int64_t tests,
                   int64_t failures)
{
    assert(tests >= 0 && failures >= 0 && failures <= tests);
    *j = (struct ab_junit){.tests = tests, .failures = failures};
    int rc = ab_outfile_open(&j->out, path);
    if (rc) return rc;
    FILE *f = j->out.f;
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"", f);
    ab_xml_escape(f, suite, 1);
    fprintf(f, "\" tests=\"%" PRId64 "\" failures=\"%" PRId64 "\" errors=\"0\">\n", tests,
            failures);
    fputs("  <testsuite name=\"", f);
    ab_xml_escape(f, suite, 1);
    fprintf(f, "\" tests=\"%" PRId64 "\" failures=\"%" PRId64 "\" errors=\"0\" skipped=\"0\">\n",
            tests, failures);
    return AB_OK;
}

void ab_junit_property(struct ab_junit *j, const char *name, const char *value)
{
    assert(j->seen_tests == 0);
    FILE *f = j->out.f;
    if (!j->in_properties) fputs("    <properties>\n", f);
    j->in_properties = 1;
    fputs("      <property name=\"", f);
    ab_xml_escape(f, name, 1);
    fputs("\" value=\"", f);
    ab_xml_escape(f, value, 1);
    fputs("\"/>\n", f);
}

static void end_properties(struct ab_junit *j)
{
    if (j->in_properties) fputs("    </properties>\n", j->out.f);
    j->in_properties = 0;
}

void ab_junit_case(struct ab_junit *j, const char *classname, const char *name,
                   const char *failure_type, const char *message, const char *details)
{
    FILE *f = j->out.f;
    end_properties(j);
    fputs("    <testcase classname=\"", f);
    ab_xml_escape(f, classname, 1);
    fputs("\" name=\"", f);
    ab_xml_escape(f, name, 1);
    j->seen_tests++;
    if (!failure_type) {
        fputs("\"/>\n", f);
        return;
    }
    j->seen_failures++;
    fputs("\">\n      <failure type=\"", f);
    ab_xml_escape(f, failure_type, 1);
    fputs("\" message=\"", f);
    ab_xml_escape(f, message, 1);
    fputs("\">", f);
    ab_xml_escape(f, details, 0);
    fputs("</failure>\n    </testcase>\n", f);
}

int ab_junit_commit(struct ab_junit *j)
{
    assert(j->seen_tests == j->tests && j->seen_failures == j->failures);
    end_properties(j);
    fputs("  </testsuite>\n</testsuites>\n", j->out.f);
    int rc = ab_outfile_commit(&j->out);
    *j = (struct ab_junit){0};
    return rc;
}

void ab_junit_abort(struct ab_junit *j)
{
    ab_outfile_abort(&j->out);
    *j = (struct ab_junit){0};
}
