#define BOOST_TEST_MODULE idemgate unit tests
#include <boost/test/unit_test.hpp>
