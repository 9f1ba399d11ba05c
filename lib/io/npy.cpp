#include "io/npy.hpp"

#include <charconv>
#include <functional>
#include <set>

namespace gradtape::detail {

namespace {

// A .npy header: a Python dict literal with exactly the keys 'descr',
// 'fortran_order' and 'shape', each once, read as ast.literal_eval would read
// the literals numpy writes (strings without escapes, True/False, tuples of
// non-negative integers); anything else is refused.
class npy_header_parser {
public:
    npy_header_parser(std::string_view text, std::function<void(const std::string&)> refuse)
        : text_(text), refuse_(std::move(refuse))
    {
    }

    npy_array parse()
    {
        npy_array array;
        std::set<std::string> seen;
        expect('{');
        while (!accept('}')) {
            const std::string key = string_literal();
            if (!seen.insert(key).second) {
                refuse_("the header names '" + key + "' twice");
            }
            expect(':');
            if (key == "descr") {
                array.descr = string_literal();
            } else if (key == "fortran_order") {
                array.fortran_order = boolean_literal();
            } else if (key == "shape") {
                array.shape = shape_literal();
            } else {
                refuse_("the header has an unknown key '" + key + "'");
            }
            if (!accept(',')) {
                expect('}');
                break;
            }
        }
        skip_space();
        if (at_ != text_.size()) {
            refuse_("the header has text after its dictionary");
        }
        for (const char* key : {"descr", "fortran_order", "shape"}) {
            if (!seen.contains(key)) {
                refuse_(std::string("the header has no '") + key + "'");
            }
        }
        return array;
    }

private:
    void skip_space()
    {
        while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n')) {
            ++at_;
        }
    }
    bool accept(char c)
    {
        skip_space();
        if (at_ < text_.size() && text_[at_] == c) {
            ++at_;
            return true;
        }
        return false;
    }
    void expect(char c)
    {
        if (!accept(c)) {
            refuse_(std::string("the header is not a dictionary literal (expected '") + c + "' at byte " +
                    std::to_string(at_) + ")");
        }
    }
    std::string string_literal()
    {
        skip_space();
        const char quote = at_ < text_.size() ? text_[at_] : '\0';
        if (quote != '\'' && quote != '"') {
            refuse_("the header has a key or value that is not a string literal at byte " + std::to_string(at_));
        }
        const std::size_t end = text_.find(quote, at_ + 1);
        const std::string_view body = text_.substr(at_ + 1, end == std::string_view::npos ? 0 : end - at_ - 1);
        if (end == std::string_view::npos || body.find_first_of("\\\n") != std::string_view::npos) {
            refuse_("the header has a string literal that is not closed, or holds an escape");
        }
        at_ = end + 1;
        return std::string(body);
    }
    bool boolean_literal()
    {
        skip_space();
        for (const auto& [word, value] : {std::pair{std::string_view("True"), true}, {"False", false}}) {
            if (text_.substr(at_).starts_with(word)) {
                at_ += word.size();
                return value;
            }
        }
        refuse_("'fortran_order' is not True or False");
        return false;
    }
    // (), (n,), (n, m), (n, m,): a 1-tuple needs its comma, as in Python.
    shape_type shape_literal()
    {
        expect('(');
        shape_type shape;
        bool trailing_comma = false;
        while (!accept(')')) {
            skip_space();
            std::size_t dim = 0;
            const char* begin = text_.data() + at_;
            const char* end = text_.data() + text_.size();
            const auto [next, failure] = std::from_chars(begin, end, dim);
            if (failure != std::errc() || (next - begin > 1 && *begin == '0')) {
                refuse_("'shape' holds something other than non-negative integers");
            }
            at_ += std::size_t(next - begin);
            shape.push_back(dim);
            trailing_comma = accept(',');
            if (!trailing_comma) {
                expect(')');
                break;
            }
        }
        if (shape.size() == 1 && !trailing_comma) {
            refuse_("'shape' is not a tuple (a 1-tuple is written (n,))");
        }
        return shape;
    }

    std::string_view text_;
    std::size_t at_ = 0;
    std::function<void(const std::string&)> refuse_;
};

}  // namespace

npy_array parse_npy(std::string_view op, std::string_view bytes, const std::string& name,
                    const source_location& site)
{
    const auto refuse = [&](const std::string& why) {
        fail<argument_error>(op, site, "array '" + name + "' is not a readable .npy: " + why);
    };
    if (bytes.size() < 10 || !bytes.starts_with("\x93NUMPY")) {
        refuse("no .npy magic");
    }
    const int major = static_cast<unsigned char>(bytes[6]);
    const int minor = static_cast<unsigned char>(bytes[7]);
    if (major < 1 || major > 3 || minor != 0) {
        refuse("format version " + std::to_string(major) + "." + std::to_string(minor) + " is not 1.0, 2.0 or 3.0");
    }
    const std::size_t length_bytes = major == 1 ? 2 : 4;
    if (bytes.size() < 8 + length_bytes) {
        refuse("truncated header");
    }
    std::size_t header_length = 0;
    for (std::size_t i = 0; i < length_bytes; ++i) {
        header_length |= std::size_t(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    }
    const std::size_t data_start = 8 + length_bytes + header_length;
    if (data_start > bytes.size()) {
        refuse("truncated header");
    }
    npy_array array = npy_header_parser(bytes.substr(8 + length_bytes, header_length), refuse).parse();
    std::size_t bytes_needed = 0;
    if (!with_element_type(array.descr, [&](auto element) { bytes_needed = sizeof(element); })) {
        refuse("dtype '" + array.descr +
               "' is not one of little-endian float32, float64, int32, int64, uint64 or uint8 ('<f4', '<f8', '<i4', "
               "'<i8', '<u8', '|u1')");
    }
    // A corrupt header may hold any numbers: the byte count must not overflow.
    for (std::size_t dim : array.shape) {
        if (__builtin_mul_overflow(bytes_needed, dim, &bytes_needed)) {
            refuse("shape " + format_shape(array.shape) + " is too large");
        }
    }
    if (bytes.size() - data_start != bytes_needed) {
        refuse("it holds " + std::to_string(bytes.size() - data_start) + " bytes of data for shape " +
               format_shape(array.shape) + ", which needs " + std::to_string(bytes_needed));
    }
    array.data = bytes.substr(data_start);
    return array;
}

}  // namespace gradtape::detail
