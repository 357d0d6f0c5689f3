# Finds whisperer's dependencies from the system (Debian 12 packages); nothing is downloaded.

set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)
find_package(Boost 1.81 CONFIG COMPONENTS json url REQUIRED)
# OpenSSL 3: signatures use EVP_MD_fetch and EVP_DigestInit_ex2.
find_package(OpenSSL 3.0 REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(SQLiteCpp REQUIRED)
