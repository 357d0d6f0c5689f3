// Includes Catch2, version 3 where installed, else the single header of version 2.
#pragma once
#ifdef WHISPERER_CATCH3
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif
