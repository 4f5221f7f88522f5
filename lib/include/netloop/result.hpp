// Result<T>: a value or a std::error_code, so syscall failures travel as values, never exceptions.
//
// The one rule for every public call that can fail: it returns a Result, truthy on
// success; error() says why it failed. Result<void> is for calls with nothing else to
// return. A bare std::error_code appears only as that error, or as a state someone holds
// (IoWatcher::error(), CloseInfo::error), never as a call's outcome.
#pragma once

#include <cassert>
#include <cerrno>
#include <system_error>
#include <utility>
#include <variant>

namespace netloop {

// The current errno as an error_code in the system category.
inline std::error_code last_error() noexcept { return {errno, std::system_category()}; }
inline std::error_code make_error(int errnum) noexcept { return {errnum, std::system_category()}; }

template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}                  // NOLINT: implicit by design
  Result(std::error_code error) : v_(error) { assert(error); }  // NOLINT

  explicit operator bool() const noexcept { return v_.index() == 0; }
  bool ok() const noexcept { return v_.index() == 0; }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  std::error_code error() const noexcept {
    return ok() ? std::error_code{} : std::get<1>(v_);
  }

 private:
  std::variant<T, std::error_code> v_;
};

// A call with nothing to return: success, or why not. A zero error_code is success, so a
// syscall wrapper may pass on whatever it has.
template <>
class Result<void> {
 public:
  Result() noexcept = default;                               // success
  Result(std::error_code error) noexcept : error_(error) {}  // NOLINT: implicit by design

  explicit operator bool() const noexcept { return !error_; }
  bool ok() const noexcept { return !error_; }
  std::error_code error() const noexcept { return error_; }

 private:
  std::error_code error_;
};

}  // namespace netloop
